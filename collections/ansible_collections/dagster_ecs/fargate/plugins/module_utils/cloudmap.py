# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cloud Map (servicediscovery) helpers shared by cloudmap_namespace and cloudmap_service."""

from __future__ import annotations

import uuid

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import (
    BOTO_ERRORS,
    apply_tags,
    call,
    camel_tags,
    client,
    paginate,
    wait_until,
)


class CloudMap:
    def __init__(self, module):
        self.module = module
        self.sd = client(module, "servicediscovery")

    def call(self, what, method, **kwargs):
        """Call ``method`` with retries; on error fail the module naming ``what``."""
        return call(self.module, self.sd, what, method, **kwargs)

    def paginate(self, what, method, key, **kwargs):
        try:
            return paginate(self.sd, method, **kwargs).get(key, [])
        except BOTO_ERRORS as e:
            self.module.fail_json_aws(e, msg=f"Failed to {what}")

    @staticmethod
    def request_id():
        return uuid.uuid4().hex

    def wait_operation(self, operation_id, timeout):
        """Wait for an asynchronous Cloud Map operation; return its targets or fail with its error."""

        def done():
            operation = self.call(f"read operation {operation_id}", "get_operation", OperationId=operation_id)
            operation = operation["Operation"]
            if operation["Status"] == "FAIL":
                self.module.fail_json(
                    msg=f"Cloud Map operation {operation_id} ({operation.get('Type')}) failed: "
                    f"{operation.get('ErrorCode')}: {operation.get('ErrorMessage')}"
                )
            return operation.get("Targets") or True if operation["Status"] == "SUCCESS" else None

        return wait_until(self.module, done, timeout, what=f"Cloud Map operation {operation_id}")

    def tags(self, arn):
        found = self.call(f"list tags of {arn}", "list_tags_for_resource", ResourceARN=arn)
        return boto3_tag_list_to_ansible_dict(found.get("Tags", []))

    def converge_tags(self, arn, desired, purge):
        return apply_tags(
            self.module,
            self.tags(arn),
            desired,
            purge,
            lambda to_set: self.call(f"tag {arn}", "tag_resource", ResourceARN=arn, Tags=camel_tags(to_set)),
            lambda keys: self.call(f"untag {arn}", "untag_resource", ResourceARN=arn, TagKeys=keys),
        )
