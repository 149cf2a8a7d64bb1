"""Node labels (docs/nodes.md, "Placement"): what a node carries (`addnode --label`,
VIBEBOX_LOCAL_NODE_LABELS) and what a sandbox requires of the engine it runs on. A requirement
comes from up to four places, merged into one: the create's `nodeLabels`, its template's
(template.yaml `nodeLabels:`), its organization's (`nodeLabels`, set by org.manage) and, for a
create from a snapshot, the snapshot's (the labels its sandbox ran with).

Here (the lowest app that needs it: organizations and templates carry requirements) are the
checks and the merge, both pure; the sandboxes app places (apps/sandboxes/services/placement.py).
"""

import re

from vibebox import exceptions as errors

# A label: lowercase key, value of letters, digits, . _ - (1-63 each); at most MAX_LABELS.
LABEL_KEY_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._/-]{0,61}[a-z0-9])?$")
LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
MAX_LABELS = 16


def check_labels(labels, *, field: str = "nodeLabels") -> dict[str, str]:
    """Labels as a node carries them and a sandbox requires them: at most MAX_LABELS, each key
    lowercase letters, digits and `. _ / -` (1-63), each value letters, digits and `. _ -` (1-63).
    400 validation_error naming the field otherwise."""
    problems = []
    if not isinstance(labels, dict):
        problems.append("an object of label names to values")
    elif len(labels) > MAX_LABELS:
        problems.append(f"at most {MAX_LABELS} labels")
    else:
        for key, value in labels.items():
            if not isinstance(key, str) or not LABEL_KEY_RE.match(key):
                problems.append(f"{key!r}: a key is 1-63 lowercase letters, digits, '.', '_', '/', '-'")
            elif not isinstance(value, str) or not LABEL_VALUE_RE.match(value):
                problems.append(f"{key}: a value is 1-63 letters, digits, '.', '_', '-'")
    if problems:
        raise errors.ValidationFailed(
            f"Invalid {field}: " + "; ".join(problems[:5]) + ".", details={"fields": {field: problems[:5]}}
        )
    return dict(labels)


def labels_merge(*sources: tuple[str, dict | None]) -> dict[str, str]:
    """One requirement from several, each `(where, labels)` (`request`, `template`,
    `organization`, `snapshot`, `sandbox`): every key any of them names, with its value. Two that
    name one key with different values cannot both be met: 400 node_labels_conflict naming the
    key and who asked for what (`details.key`, `details.values`)."""
    merged: dict[str, str] = {}
    asked: dict[str, dict[str, str]] = {}
    for where, labels in sources:
        for key, value in (labels or {}).items():
            asked.setdefault(key, {})[where] = value
            if merged.setdefault(key, value) != value:
                values = asked[key]
                raise errors.NodeLabelsConflict(
                    f"Node label {key!r} is required with different values: "
                    + ", ".join(f"{value!r} by the {where}" for where, value in values.items())
                    + "; no engine can have both.",
                    details={"key": key, "values": values},
                )
    return merged
