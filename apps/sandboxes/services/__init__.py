"""The sandboxes app's writes (DESIGN.md §2): create, lifecycle, exec, files, git, snapshots, env and
pools, one module each. These are the only callers of the runtime driver. Nothing is re-exported
here: import the module (or the function) you use."""
