"""Checks an executed notebook: every code cell ran without an error, and a chart was drawn.

python check_notebook.py executed.ipynb
"""

import sys

import nbformat


def main(path: str) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    errors = [out for cell in code for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    if errors:
        sys.exit(f"{path}: {errors[0]['ename']}: {errors[0]['evalue']}")
    unexecuted = [cell for cell in code if cell.get("execution_count") is None]
    if unexecuted:
        sys.exit(f"{path}: {len(unexecuted)} code cell(s) did not run")
    images = [out for cell in code for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    if not images:
        sys.exit(f"{path}: no chart in the outputs")
    print(f"{path}: {len(code)} code cells ran, {len(images)} chart(s)")


if __name__ == "__main__":
    main(sys.argv[1])
