"""The update agent as the hub sees it: its status file read and validated, its request file
written (the file contract is ota/README.md; the hub shares no code with ota/)."""
