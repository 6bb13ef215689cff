"""client_py package."""
