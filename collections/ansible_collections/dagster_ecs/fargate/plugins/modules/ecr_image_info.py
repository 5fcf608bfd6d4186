#!/usr/bin/python
# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecr_image_info
short_description: Which tags an ECR repository holds, and (optionally) a registry login
version_added: 0.1.0
description:
  - Reports which of O(image_tags) the repository already holds, with their digests, so that an image is pushed only
    once (a repository with immutable tags refuses a second push of a tag).
  - With O(login=true) also returns a short-lived registry login (C(AWS) and an authorization token) for
    M(community.docker.docker_login); use C(no_log) on the task.
  - Fills a gap. No amazon.aws or community.aws module lists images or returns an ECR login.
author:
  - dagster-ecs-ansible contributors (@dagster-ecs-ansible)
options:
  repository_name:
    description: Repository name.
    type: str
    required: true
  image_tags:
    description: Tags to look for.
    type: list
    elements: str
    default: []
  login:
    description: Also return a registry login.
    type: bool
    default: false
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Is the tag there yet, and how do we log in?
  dagster_ecs.fargate.ecr_image_info:
    repository_name: dagster-ecs
    image_tags: ["0.1.0"]
    login: true
  register: ecr
  no_log: true
"""

RETURN = r"""
images:
  description: The requested tags the repository holds, tag -> image digest.
  returned: always
  type: dict
  sample: {"0.1.0": "sha256:0123..."}
missing:
  description: The requested tags it does not hold.
  returned: always
  type: list
  elements: str
login:
  description: Registry login (C(registry), C(username), C(password)), with O(login=true).
  returned: when login is true
  type: dict
"""

import base64

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import BOTO_ERRORS, call, client


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            repository_name=dict(type="str", required=True),
            image_tags=dict(type="list", elements="str", default=[]),
            login=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    ecr = client(module, "ecr")
    name, tags = module.params["repository_name"], module.params["image_tags"]
    images = {}
    for tag in tags:
        try:
            found = ecr.describe_images(aws_retry=True, repositoryName=name, imageIds=[{"imageTag": tag}])
        except is_boto3_error_code(["ImageNotFoundException"]):
            continue
        except BOTO_ERRORS as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to describe image {name}:{tag}")
        for detail in found.get("imageDetails", []):
            images[tag] = detail["imageDigest"]
    result = {"changed": False, "images": images, "missing": [t for t in tags if t not in images]}
    if module.params["login"]:
        data = call(module, ecr, "get an ECR authorization token", "get_authorization_token")["authorizationData"][0]
        username, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
        result["login"] = {"registry": data["proxyEndpoint"], "username": username, "password": password}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
