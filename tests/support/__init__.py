"""What the tests share, imported explicitly (``from support.playbook import run_playbook``).

Fixtures and pytest hooks live in ``tests/conftest.py``; everything else a test or a bench script
needs lives here, one job per module:

- ``paths``: the repository root and the venv's bin directory.
- ``net``: a free loopback port, the one HTTP request helper, the one wait loop.
- ``emulator``: start the embedded AWS emulator on a free port; the offline credentials.
- ``playbook``: run ansible-playbook (and this venv's Python) as a user does; a private offline profile.
- ``stage_checks``: what each site.yml stage must have built (also a CLI: molecule's verify runs it).
- ``aws_inventory``: boto3 clients against an endpoint, and what a project left behind.
- ``iam_proof``: the IAM policies proven by the calls the workload made.
- ``processes``: this machine's processes from /proc (command line, environment, children).
- ``browser``, ``docker_engine``, ``localstack_stub``, ``look_alikes``, ``ansible_sanity``, ``role_docs``:
  headless Chromium, a private dockerd, a LocalStack look-alike, look-alike resources, ansible-test's
  offline home, the generated role READMEs.
"""
