"""efs_access_point: an access point found by its Name tag; replaced when its immutable settings differ."""

from __future__ import annotations

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.modules import efs_access_point

NAME = "dagster-ecs-dagster"
POSIX = {"uid": 1000, "gid": 1000, "secondary_gids": [30, 20]}
ROOT = {"path": "/dagster", "creation_info": {"owner_uid": 1000, "owner_gid": 1000, "permissions": "0755"}}


@pytest.fixture
def fs(aws):
    file_system_id = aws.client("efs").create_file_system(CreationToken="fs")["FileSystemId"]
    aws.forget()
    return file_system_id


def args(fs, **extra):
    return {"file_system_id": fs, "name": NAME, "posix_user": POSIX, "root_directory": ROOT, **extra}


@pytest.fixture
def access_point(run_module, fs, aws):
    """The access point, tagged Project=p."""
    result = run_module(efs_access_point, args(fs, tags={"Project": "p"}))
    aws.forget()
    return result["access_point"]


def access_points(aws, fs):
    return aws.client("efs").describe_access_points(FileSystemId=fs)["AccessPoints"]


def test_creates_and_waits_until_available(run_module, fs, aws):
    result = run_module(efs_access_point, args(fs, tags={"Project": "p"}))
    assert result["changed"]
    ap = result["access_point"]
    assert ap["access_point_id"].startswith("fsap-") and ap["file_system_id"] == fs
    assert ap["life_cycle_state"] == "available"
    assert ap["tags"] == {"Project": "p", "Name": NAME}
    assert ap["posix_user"] == {"Uid": 1000, "Gid": 1000, "SecondaryGids": [20, 30]}
    assert ap["root_directory"]["Path"] == "/dagster"
    assert result["diff"] == {"before": {}, "after": ap}
    create = aws.params("CreateAccessPoint")[0]
    assert create["ClientToken"].startswith(f"{NAME[:28]}-") and len(create["ClientToken"]) <= 64
    assert create["RootDirectory"]["CreationInfo"] == {"OwnerUid": 1000, "OwnerGid": 1000, "Permissions": "0755"}
    assert aws.params("DescribeAccessPoints")[-1] == {"AccessPointId": ap["access_point_id"]}


def test_minimal_access_point(run_module, fs, aws):
    result = run_module(efs_access_point, {"file_system_id": fs, "name": NAME, "wait": False})
    assert result["changed"] and result["access_point"]["tags"] == {"Name": NAME}
    create = aws.params("CreateAccessPoint")[0]
    assert "PosixUser" not in create and "RootDirectory" not in create
    assert aws.count("DescribeAccessPoints") == 1  # the lookup only: no wait


def test_second_run_changes_nothing(run_module, access_point, fs, aws):
    result = run_module(efs_access_point, args(fs, tags={"Project": "p"}))
    assert not result["changed"] and result["access_point"] == access_point
    assert result["diff"] == {}
    assert aws.count("CreateAccessPoint") == aws.count("TagResource") == 0


def test_without_tags_the_tags_are_not_managed(run_module, access_point, fs, aws):
    result = run_module(efs_access_point, args(fs))
    assert not result["changed"] and result["access_point"]["tags"] == {"Project": "p", "Name": NAME}


def test_tags_converge_and_name_is_kept(run_module, access_point, fs, aws):
    result = run_module(efs_access_point, args(fs, tags={"Owner": "me"}))
    assert result["changed"]
    assert result["access_point"]["access_point_id"] == access_point["access_point_id"]
    assert result["access_point"]["tags"] == {"Owner": "me", "Name": NAME}
    assert result["diff"]["after"] == {"tags": {"Name": NAME, "Owner": "me"}}
    assert aws.params("UntagResource")[0]["TagKeys"] == ["Project"]
    empty = run_module(efs_access_point, args(fs, tags={}))
    assert empty["access_point"]["tags"] == {"Name": NAME}


def test_check_mode_tags(run_module, access_point, fs, aws):
    result = run_module(efs_access_point, args(fs, tags={"Owner": "me"}), check_mode=True)
    assert result["changed"] and result["access_point"]["tags"] == {"Project": "p", "Name": NAME}
    assert aws.count("TagResource") == aws.count("UntagResource") == 0


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"posix_user": {"uid": 1001, "gid": 1000}}, "posix_user"),
        ({"root_directory": dict(ROOT, path="/other")}, "root_directory.path"),
        (
            {"root_directory": dict(ROOT, creation_info={"owner_uid": 0, "owner_gid": 0, "permissions": "0700"})},
            "root_directory.creation_info",
        ),
    ],
)
def test_immutable_change_without_replace_fails(run_module, access_point, fs, aws, changes, named):
    result = run_module(efs_access_point, dict(args(fs), replace_on_change=False, **changes))
    assert result["failed"]
    assert result["msg"].startswith(f"Access point {access_point['access_point_id']} differs in {named}, ")
    assert result["access_point"]["access_point_id"] == access_point["access_point_id"]
    assert aws.count("DeleteAccessPoint") == 0


def test_immutable_change_replaces(run_module, access_point, fs, aws):
    result = run_module(efs_access_point, args(fs, root_directory=dict(ROOT, path="/other"), tags={"Project": "p"}))
    assert result["changed"]
    new = result["access_point"]
    assert new["access_point_id"] != access_point["access_point_id"]
    assert new["root_directory"]["Path"] == "/other"
    assert result["diff"] == {"before": access_point, "after": new}
    assert [ap["AccessPointId"] for ap in access_points(aws, fs)] == [new["access_point_id"]]


def test_check_mode_replace(run_module, access_point, fs, aws):
    result = run_module(efs_access_point, args(fs, posix_user={"uid": 1, "gid": 1}), check_mode=True)
    assert result["changed"] and result["access_point"] == access_point
    assert result["diff"]["after"]["posix_user"] == {"Uid": 1, "Gid": 1}
    assert aws.count("DeleteAccessPoint") == aws.count("CreateAccessPoint") == 0


def test_check_mode_create(run_module, fs, aws):
    result = run_module(efs_access_point, args(fs), check_mode=True)
    assert result["changed"] and result["access_point"] == {}
    assert result["diff"]["after"]["tags"] == {"Name": NAME}
    assert access_points(aws, fs) == []


def test_absent(run_module, access_point, fs, aws):
    gone = {"file_system_id": fs, "name": NAME, "state": "absent"}
    checked = run_module(efs_access_point, gone, check_mode=True)
    assert checked["changed"] and checked["diff"] == {"before": access_point, "after": {}}
    assert aws.count("DeleteAccessPoint") == 0
    result = run_module(efs_access_point, gone)
    assert result["changed"] and result["access_point"] == {}
    assert access_points(aws, fs) == []
    assert not run_module(efs_access_point, gone)["changed"]


def test_absent_without_wait(run_module, access_point, fs, aws):
    run_module(efs_access_point, {"file_system_id": fs, "name": NAME, "state": "absent", "wait": False})
    assert aws.count("DescribeAccessPoints") == 1


def test_other_names_and_deleting_access_points_are_ignored(run_module, fs, aws):
    efs = aws.client("efs")
    efs.create_access_point(ClientToken="other", FileSystemId=fs, Tags=[{"Key": "Name", "Value": "other"}])
    efs.create_access_point(ClientToken="untagged", FileSystemId=fs)
    efs.create_access_point(ClientToken="dying", FileSystemId=fs, Tags=[{"Key": "Name", "Value": NAME}])

    def deleting(call, params):
        response = call()
        for ap in response["AccessPoints"]:
            ap["LifeCycleState"] = "deleting"
        return response

    aws.answer("DescribeAccessPoints", deleting, times=1)
    result = run_module(efs_access_point, {"file_system_id": fs, "name": NAME, "state": "absent"})
    assert not result["changed"]


def test_two_access_points_with_the_name_fail(run_module, fs, aws):
    efs = aws.client("efs")
    for token in ("one", "two"):
        efs.create_access_point(ClientToken=token, FileSystemId=fs, Tags=[{"Key": "Name", "Value": NAME}])
    result = run_module(efs_access_point, args(fs))
    assert result["failed"] and result["msg"].startswith(f"2 access points of {fs} are named {NAME}: fsap-")


def in_state(state):
    def answer(call, params):
        response = call()
        if "AccessPointId" in params:
            for ap in response["AccessPoints"]:
                ap["LifeCycleState"] = state
        return response

    return answer


def test_waits_while_creating(run_module, fs, aws, clock):
    aws.answer("DescribeAccessPoints", in_state("creating"), times=3)
    result = run_module(efs_access_point, args(fs))
    assert result["changed"] and result["access_point"]["life_cycle_state"] == "available"
    assert clock.sleeps == [2, 2]


def test_create_wait_times_out(run_module, fs, aws, clock):
    aws.answer("DescribeAccessPoints", in_state("creating"))
    result = run_module(efs_access_point, args(fs, wait_timeout=7))
    assert result["failed"]
    assert result["msg"].startswith("Timed out after 7s waiting for access point fsap-")
    assert result["msg"].endswith(" to become available")


def test_delete_wait_times_out(run_module, access_point, fs, aws, clock):
    still_there = {"AccessPoints": [{"AccessPointId": access_point["access_point_id"], "LifeCycleState": "deleting"}]}
    aws.answer("DescribeAccessPoints", lambda call, params: still_there if "AccessPointId" in params else call())
    aws.answer("DeleteAccessPoint", {})
    result = run_module(efs_access_point, {"file_system_id": fs, "name": NAME, "state": "absent", "wait_timeout": 3})
    assert result["failed"] and result["msg"].endswith(" to be deleted")


@pytest.mark.parametrize(
    ("root", "message"),
    [
        ({"path": "relative"}, "root_directory.path must be absolute, got relative"),
        (
            dict(ROOT, creation_info={"owner_uid": 1, "owner_gid": 1, "permissions": "0999"}),
            "root_directory.creation_info.permissions must be octal like 0755, got 0999",
        ),
        (
            dict(ROOT, creation_info={"owner_uid": 1, "owner_gid": 1, "permissions": "75"}),
            "root_directory.creation_info.permissions must be octal like 0755, got 75",
        ),
    ],
)
def test_bad_root_directory_fails_before_any_call(run_module, fs, aws, root, message):
    result = run_module(efs_access_point, args(fs, root_directory=root))
    assert result["failed"] and result["msg"] == message
    assert aws.calls == []


def test_three_digit_permissions_are_fine(run_module, fs, aws):
    root = dict(ROOT, creation_info={"owner_uid": 1, "owner_gid": 1, "permissions": "750"})
    assert run_module(efs_access_point, args(fs, root_directory=root))["changed"]


@pytest.mark.parametrize(
    ("operation", "message", "state"),
    [
        ("CreateAccessPoint", f"Failed to create access point {NAME}", "present"),
        ("DeleteAccessPoint", "Failed to delete access point fsap-", "absent"),
    ],
)
def test_write_errors(run_module, fs, aws, operation, message, state):
    if state == "absent":
        run_module(efs_access_point, args(fs))
    aws.fail(operation, "AccessPointLimitExceeded")
    result = run_module(efs_access_point, args(fs, state=state))
    assert result["failed"] and result["msg"].startswith(message)
    assert result["error"]["code"] == "AccessPointLimitExceeded"


def test_describe_errors(run_module, access_point, fs, aws):
    aws.fail("DescribeAccessPoints", "FileSystemNotFound", times=1)
    result = run_module(efs_access_point, args(fs))
    assert result["failed"] and result["msg"].startswith(f"Failed to describe the access points of {fs}")
    # the lookup passes, the wait's describe of the deleted one fails
    aws.answer("DescribeAccessPoints", lambda call, params: call(), times=1)
    aws.fail("DescribeAccessPoints", "InternalServerError", status=500)
    result = run_module(efs_access_point, args(fs, state="absent"))
    assert result["failed"] and result["msg"].startswith(
        f"Failed to describe access point {access_point['access_point_id']}"
    )


def test_tag_errors(run_module, access_point, fs, aws):
    aws.fail("TagResource", "BadRequest")
    result = run_module(efs_access_point, args(fs, tags={"New": "1"}, purge_tags=False))
    assert result["failed"] and result["msg"].startswith(
        f"Failed to tag access point {access_point['access_point_id']}"
    )
    aws.fail("UntagResource", "BadRequest")
    result = run_module(efs_access_point, args(fs, tags={}))
    assert result["failed"] and result["msg"].startswith(f"Failed to untag {access_point['access_point_id']}")


def test_throttled_create_is_retried(run_module, fs, aws):
    aws.fail("CreateAccessPoint", "ThrottlingException", times=2)
    result = run_module(efs_access_point, args(fs))
    assert result["changed"] and aws.count("CreateAccessPoint") == 3 and len(aws.sleeps) == 2


def test_differences_helpers():
    params = {"posix_user": None, "root_directory": None}
    assert efs_access_point.differences({}, params) == []
    existing = {"PosixUser": {"Uid": 1, "Gid": 1, "SecondaryGids": []}, "RootDirectory": {"Path": "/"}}
    assert efs_access_point.normalise(existing) == ({"Uid": 1, "Gid": 1}, {"Path": "/"})
    assert efs_access_point.differences(existing, {"posix_user": {"uid": 1, "gid": 1}, "root_directory": None}) == []
    assert efs_access_point.to_result(None) == {}
    assert efs_access_point.desired_root_directory({"root_directory": {"path": None}}) == {"Path": "/"}
