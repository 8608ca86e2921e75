"""Build hook: install ``cli/`` under the import name ``clss_cli`` in editable installs too.

Hatchling cannot rename a package in an editable install, so the editable wheel gets an
``editables`` finder that maps ``clss_cli`` onto ``cli/`` in the source tree.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version != "editable":
            return
        from editables import EditableProject

        project = EditableProject("clss_cli", self.root)
        project.map("clss_cli", os.path.join(self.root, "cli"))
        out = tempfile.mkdtemp(prefix="clss-editable-")
        forced = build_data["force_include_editable"]
        for name, content in project.files():
            path = os.path.join(out, name)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(content)
            forced[path] = f"_{name}" if name.endswith(".pth") else name
        build_data["dependencies"].extend(project.dependencies())
