"""The two top-level packages depend one way: `webhook` on `discovery`, never back."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _imported_modules(path: pathlib.Path) -> set[str]:
    """Every absolute module a file imports, at any depth (lazy imports inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_discovery_module_imports_the_webhook_package():
    """No module under discovery/ imports webhook, lazily or not: the webhook is fed by discovery."""
    importing = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "discovery").rglob("*.py")
        if any(name == "webhook" or name.startswith("webhook.") for name in _imported_modules(path))
    )
    assert importing == []


def test_the_scan_sees_a_lazy_import(tmp_path):
    """The import scan finds an import inside a function, as app.py's used to be."""
    module = tmp_path / "lazy.py"
    module.write_text("def start():\n    from webhook.server import WebhookServer\n")
    assert "webhook.server" in _imported_modules(module)
