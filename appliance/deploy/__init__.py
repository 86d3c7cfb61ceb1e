"""Roll-outs: inventory rendering from conf/, Ansible runs, and a local process supervisor."""
