#!/usr/bin/python
# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: efs_access_point
short_description: Manage an Amazon EFS access point
version_added: 0.1.0
description:
  - Creates, converges or deletes an EFS access point, identified by its C(Name) tag within a file system.
  - Fills a gap in community.aws, whose M(community.aws.efs) manages file systems and mount targets only.
  - An access point cannot be modified except for its tags. When O(posix_user) or O(root_directory) differ from
    the existing access point, it is replaced (deleted and created again, which gives it a new id) if
    O(replace_on_change=true), otherwise the module fails and names the difference.
  - The C(Name) tag is always O(name); O(tags) sets the others, and O(purge_tags) never removes C(Name).
  - Supports check mode and diff mode.
author:
  - dagster-ecs-ansible contributors (@dagster-ecs-ansible)
options:
  file_system_id:
    description: Id of the file system (C(fs-...)).
    type: str
    required: true
  name:
    description: Value of the access point's C(Name) tag, which identifies it.
    type: str
    required: true
  state:
    description: Whether the access point exists.
    type: str
    choices: [present, absent]
    default: present
  posix_user:
    description: Operating system user and group applied to all requests through the access point.
    type: dict
    suboptions:
      uid:
        description: POSIX user id.
        type: int
        required: true
      gid:
        description: POSIX group id.
        type: int
        required: true
      secondary_gids:
        description: Secondary POSIX group ids.
        type: list
        elements: int
  root_directory:
    description: Directory exposed as the root of the access point.
    type: dict
    suboptions:
      path:
        description: Absolute path in the file system.
        type: str
        default: /
      creation_info:
        description: Owner and permissions used to create O(root_directory.path) if it does not exist.
        type: dict
        suboptions:
          owner_uid:
            description: Owner user id.
            type: int
            required: true
          owner_gid:
            description: Owner group id.
            type: int
            required: true
          permissions:
            description: Octal permissions, for example V(0755).
            type: str
            required: true
  replace_on_change:
    description: Replace the access point when its immutable settings differ (its id changes).
    type: bool
    default: true

  wait:
    description: Wait until a created access point is C(available) or a deleted one is gone.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 120
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.tags
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Give Dagster its own directory on the file system, owned by the container user
  dagster_ecs.fargate.efs_access_point:
    file_system_id: fs-0123456789abcdef0
    name: dagster-ecs-dagster
    posix_user:
      uid: 1000
      gid: 1000
    root_directory:
      path: /dagster
      creation_info:
        owner_uid: 1000
        owner_gid: 1000
        permissions: "0755"
    tags:
      Project: dagster-ecs

- name: Remove it
  dagster_ecs.fargate.efs_access_point:
    file_system_id: fs-0123456789abcdef0
    name: dagster-ecs-dagster
    state: absent
"""

RETURN = r"""
access_point:
  description: The access point (empty after deletion).
  returned: always
  type: dict
  contains:
    access_point_id:
      description: Id of the access point.
      type: str
      sample: fsap-0123456789abcdef0
    access_point_arn:
      description: ARN of the access point.
      type: str
    file_system_id:
      description: Id of its file system.
      type: str
    posix_user:
      description: The POSIX identity, as returned by EFS.
      type: dict
    root_directory:
      description: The root directory, as returned by EFS.
      type: dict
    life_cycle_state:
      description: C(creating), C(available), C(deleting) ...
      type: str
    tags:
      description: Tags, as a dict.
      type: dict
"""

import uuid

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
)
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import (
    BOTO_ERRORS,
    TAG_ARGS,
    apply_tags,
    call,
    client,
    paginate,
    wait_until,
)


def desired_posix_user(params):
    user = params.get("posix_user")
    if not user:
        return None
    result = {"Uid": user["uid"], "Gid": user["gid"]}
    if user.get("secondary_gids"):
        result["SecondaryGids"] = sorted(user["secondary_gids"])
    return result


def desired_root_directory(params):
    root = params.get("root_directory")
    if not root:
        return None
    result = {"Path": root.get("path") or "/"}
    info = root.get("creation_info")
    if info:
        result["CreationInfo"] = {
            "OwnerUid": info["owner_uid"],
            "OwnerGid": info["owner_gid"],
            "Permissions": info["permissions"],
        }
    return result


def normalise(access_point):
    """The comparable immutable settings of an existing access point."""
    user = dict(access_point.get("PosixUser") or {})
    if user.get("SecondaryGids"):
        user["SecondaryGids"] = sorted(user["SecondaryGids"])
    else:
        user.pop("SecondaryGids", None)
    root = dict(access_point.get("RootDirectory") or {"Path": "/"})
    return user or None, root


def differences(access_point, params):
    """Names of the immutable settings whose desired value differs from the existing one."""
    user, root = normalise(access_point)
    found = []
    wanted_user = desired_posix_user(params)
    if params.get("posix_user") is not None and wanted_user != user:
        found.append("posix_user")
    wanted_root = desired_root_directory(params)
    if wanted_root is not None:
        if wanted_root["Path"] != root.get("Path", "/"):
            found.append("root_directory.path")
        elif "CreationInfo" in wanted_root and wanted_root["CreationInfo"] != root.get("CreationInfo"):
            found.append("root_directory.creation_info")
    return found


def to_result(access_point):
    if not access_point:
        return {}
    return {
        "access_point_id": access_point["AccessPointId"],
        "access_point_arn": access_point.get("AccessPointArn"),
        "file_system_id": access_point.get("FileSystemId"),
        "name": access_point.get("Name"),
        "posix_user": access_point.get("PosixUser"),
        "root_directory": access_point.get("RootDirectory"),
        "life_cycle_state": access_point.get("LifeCycleState"),
        "tags": boto3_tag_list_to_ansible_dict(access_point.get("Tags", [])),
    }


class AccessPoints:
    def __init__(self, module):
        self.module = module
        self.efs = client(module, "efs")

    def find(self, file_system_id, name):
        try:
            pages = paginate(self.efs, "describe_access_points", FileSystemId=file_system_id)
        except BOTO_ERRORS as e:
            self.module.fail_json_aws(e, msg=f"Failed to describe the access points of {file_system_id}")
        matches = [
            ap
            for ap in pages.get("AccessPoints", [])
            if boto3_tag_list_to_ansible_dict(ap.get("Tags", [])).get("Name") == name
            and ap.get("LifeCycleState") not in ("deleting", "deleted")
        ]
        if len(matches) > 1:
            ids = ", ".join(ap["AccessPointId"] for ap in matches)
            self.module.fail_json(msg=f"{len(matches)} access points of {file_system_id} are named {name}: {ids}")
        return matches[0] if matches else None

    def get(self, access_point_id):
        try:
            found = self.efs.describe_access_points(aws_retry=True, AccessPointId=access_point_id)["AccessPoints"]
        except is_boto3_error_code("AccessPointNotFound"):
            return None
        except BOTO_ERRORS as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to describe access point {access_point_id}")
        return found[0] if found else None

    def create(self, params, tags):
        kwargs = {
            "ClientToken": f"{params['name'][:28]}-{uuid.uuid4().hex}",
            "FileSystemId": params["file_system_id"],
            "Tags": ansible_dict_to_boto3_tag_list(tags),
        }
        if desired_posix_user(params):
            kwargs["PosixUser"] = desired_posix_user(params)
        if desired_root_directory(params):
            kwargs["RootDirectory"] = desired_root_directory(params)
        try:
            created = self.efs.create_access_point(aws_retry=True, **kwargs)
        except BOTO_ERRORS as e:
            self.module.fail_json_aws(e, msg=f"Failed to create access point {params['name']}")
        if params["wait"]:
            created = wait_until(
                self.module,
                lambda: self._in_state(created["AccessPointId"], "available"),
                params["wait_timeout"],
                what=f"access point {created['AccessPointId']} to become available",
            )
        return created

    def _in_state(self, access_point_id, state):
        found = self.get(access_point_id)
        return found if found and found.get("LifeCycleState") == state else None

    def delete(self, access_point, wait, timeout):
        access_point_id = access_point["AccessPointId"]
        try:
            self.efs.delete_access_point(aws_retry=True, AccessPointId=access_point_id)
        except BOTO_ERRORS as e:
            self.module.fail_json_aws(e, msg=f"Failed to delete access point {access_point_id}")
        if wait:
            wait_until(
                self.module,
                lambda: self.get(access_point_id) is None,
                timeout,
                what=f"access point {access_point_id} to be deleted",
            )

    def tag(self, access_point_id, tags):
        what = f"tag access point {access_point_id}"
        call(
            self.module,
            self.efs,
            what,
            "tag_resource",
            ResourceId=access_point_id,
            Tags=ansible_dict_to_boto3_tag_list(tags),
        )

    def untag(self, ap_id, keys):
        call(self.module, self.efs, f"untag {ap_id}", "untag_resource", ResourceId=ap_id, TagKeys=keys)


def ensure_present(module, aps, existing):
    params = module.params
    tags = dict(params["tags"] or {})
    tags["Name"] = params["name"]
    planned = {
        "file_system_id": params["file_system_id"],
        "posix_user": desired_posix_user(params),
        "root_directory": desired_root_directory(params),
        "tags": tags,
    }
    if existing:
        changed_settings = differences(existing, params)
        if changed_settings and not params["replace_on_change"]:
            module.fail_json(
                msg=f"Access point {existing['AccessPointId']} differs in {', '.join(changed_settings)}, which EFS "
                "cannot modify; set replace_on_change=true to replace it",
                access_point=to_result(existing),
            )
        if not changed_settings:
            if params["tags"] is None:  # tags not managed by this task
                return False, existing, {}
            ap_id = existing["AccessPointId"]
            changed, diff = apply_tags(
                module,
                boto3_tag_list_to_ansible_dict(existing.get("Tags", [])),
                tags,
                params["purge_tags"],
                lambda to_set: aps.tag(ap_id, to_set),
                lambda to_remove: aps.untag(ap_id, to_remove),
                keep=("Name",),
            )
            if changed and not module.check_mode:
                existing = aps.get(ap_id)
            return changed, existing, diff
        # Replace: EFS has no modify call for these settings.
        before = to_result(existing)
        if module.check_mode:
            return True, existing, {"before": before, "after": planned}
        aps.delete(existing, True, params["wait_timeout"])
        created = aps.create(params, tags)
        return True, created, {"before": before, "after": to_result(created)}
    if module.check_mode:
        return True, None, {"before": {}, "after": planned}
    created = aps.create(params, tags)
    return True, created, {"before": {}, "after": to_result(created)}


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            file_system_id=dict(type="str", required=True),
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            posix_user=dict(
                type="dict",
                options=dict(
                    uid=dict(type="int", required=True),
                    gid=dict(type="int", required=True),
                    secondary_gids=dict(type="list", elements="int"),
                ),
            ),
            root_directory=dict(
                type="dict",
                options=dict(
                    path=dict(type="str", default="/"),
                    creation_info=dict(
                        type="dict",
                        options=dict(
                            owner_uid=dict(type="int", required=True),
                            owner_gid=dict(type="int", required=True),
                            permissions=dict(type="str", required=True),
                        ),
                    ),
                ),
            ),
            replace_on_change=dict(type="bool", default=True),
            **TAG_ARGS,
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    root = module.params.get("root_directory") or {}
    if root.get("path") and not root["path"].startswith("/"):
        module.fail_json(msg=f"root_directory.path must be absolute, got {root['path']}")
    permissions = (root.get("creation_info") or {}).get("permissions")
    if permissions is not None and not (len(permissions) in (3, 4) and all(c in "01234567" for c in permissions)):
        module.fail_json(msg=f"root_directory.creation_info.permissions must be octal like 0755, got {permissions}")

    aps = AccessPoints(module)
    existing = aps.find(module.params["file_system_id"], module.params["name"])

    if module.params["state"] == "absent":
        if not existing:
            module.exit_json(changed=False, access_point={})
        if not module.check_mode:
            aps.delete(existing, module.params["wait"], module.params["wait_timeout"])
        module.exit_json(changed=True, access_point={}, diff={"before": to_result(existing), "after": {}})

    changed, access_point, diff = ensure_present(module, aps, existing)
    module.exit_json(changed=changed, access_point=to_result(access_point), diff=diff)


if __name__ == "__main__":
    main()
