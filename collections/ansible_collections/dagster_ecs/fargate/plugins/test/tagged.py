# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: tagged
short_description: Whether a resource's tags include all of the given tags
version_added: 0.1.0
description:
  - True when every key of O(required) is among the resource's tags with the same value.
  - Accepts tags as a dict or as an AWS tag list of C(Key)/C(Value) (or C(key)/C(value)) pairs; C(None) or a missing
    value means no tags.
  - Teardown uses it to touch only resources tagged as the project's.
options:
  _input:
    description: The resource's tags.
    type: raw
    required: true
  required:
    description: Tags that must all be present with these values.
    type: dict
    required: true
author:
  - dagster-ecs-ansible contributors
"""

EXAMPLES = r"""
- name: Delete the bucket only if it is ours
  amazon.aws.s3_bucket:
    name: "{{ bucket }}"
    state: absent
  when: "bucket_info.buckets[0].bucket_tagging is dagster_ecs.fargate.tagged({'Project': 'dagster-ecs'})"
"""

RETURN = r"""
_value:
  description: Whether all required tags are present.
  type: bool
"""


def as_dict(tags):
    """Tags in any of AWS's shapes as a plain dict."""
    if not tags:
        return {}
    if isinstance(tags, dict):
        return dict(tags)
    result = {}
    for tag in tags:
        key = tag.get("Key", tag.get("key"))
        value = tag.get("Value", tag.get("value"))
        result[key] = value
    return result


def tagged(tags, required):
    present = as_dict(tags)
    return all(present.get(key) == value for key, value in (required or {}).items())


class TestModule:
    def tests(self):
        return {"tagged": tagged}
