#!/usr/bin/python
# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecr_tag
short_description: Manage the tags of an ECR repository
version_added: 0.1.0
description:
  - Adds, updates and (with O(purge_tags)) removes tags on an Amazon ECR repository.
  - Fills a gap in community.aws, where M(community.aws.ecs_ecr) manages repositories but not their tags and
    M(community.aws.ecs_tag) covers ECS resources only.
  - Supports check mode and diff mode.
author:
  - dagster-ecs-ansible contributors (@dagster-ecs-ansible)
options:
  repository_name:
    description: Name of the repository.
    type: str
    required: true
  registry_id:
    description: Registry (account) id; defaults to the caller's.
    type: str
  state:
    description:
      - V(present) sets O(tags); V(absent) removes the keys of O(tags) (only where the value matches, unless the value
        is empty).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.tags
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Tag the Dagster image repository
  dagster_ecs.fargate.ecr_tag:
    repository_name: dagster-ecs
    tags:
      Project: dagster-ecs
      ManagedBy: dagster-ecs-ansible
    purge_tags: true
"""

RETURN = r"""
repository_arn:
  description: ARN of the repository.
  returned: always
  type: str
  sample: arn:aws:ecr:ap-southeast-2:123456789012:repository/dagster-ecs
tags:
  description: The repository's tags after the change.
  returned: always
  type: dict
  sample: {"Project": "dagster-ecs"}
added_tags:
  description: Tags added or updated.
  returned: always
  type: dict
removed_tags:
  description: Tag keys removed.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
)
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import BOTO_ERRORS, TAG_ARGS, client, plan_tags


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            repository_name=dict(type="str", required=True),
            registry_id=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **TAG_ARGS,
        ),
        required_if=[("state", "absent", ["tags"])],
        supports_check_mode=True,
    )
    ecr = client(module, "ecr")
    name = module.params["repository_name"]
    kwargs = {"repositoryNames": [name]}
    if module.params["registry_id"]:
        kwargs["registryId"] = module.params["registry_id"]

    try:
        repo = ecr.describe_repositories(aws_retry=True, **kwargs)["repositories"][0]
    except is_boto3_error_code("RepositoryNotFoundException"):
        module.fail_json(msg=f"ECR repository {name} does not exist")
    except BOTO_ERRORS as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to describe ECR repository {name}")
    arn = repo["repositoryArn"]

    try:
        current = boto3_tag_list_to_ansible_dict(
            ecr.list_tags_for_resource(aws_retry=True, resourceArn=arn).get("tags", []),
            tag_name_key_name="Key",
            tag_value_key_name="Value",
        )
    except BOTO_ERRORS as e:
        module.fail_json_aws(e, msg=f"Failed to list tags of {arn}")

    desired = module.params["tags"] or {}
    if module.params["state"] == "present":
        to_set, to_remove = plan_tags(current, module.params["tags"], module.params["purge_tags"])
    else:
        to_set = {}
        to_remove = [k for k, v in desired.items() if k in current and (v in ("", None) or current[k] == v)]

    if (to_set or to_remove) and not module.check_mode:
        try:
            if to_remove:
                ecr.untag_resource(aws_retry=True, resourceArn=arn, tagKeys=to_remove)
            if to_set:
                ecr.tag_resource(aws_retry=True, resourceArn=arn, tags=ansible_dict_to_boto3_tag_list(to_set))
        except BOTO_ERRORS as e:
            module.fail_json_aws(e, msg=f"Failed to update tags of {arn}")

    after = {k: v for k, v in current.items() if k not in to_remove}
    after.update(to_set)
    module.exit_json(
        changed=bool(to_set or to_remove),
        repository_arn=arn,
        tags=after,
        added_tags=to_set,
        removed_tags=to_remove,
        diff={"before": {"tags": current}, "after": {"tags": after}},
    )


if __name__ == "__main__":
    main()
