"""Where the repository keeps its configs and committed results (reports/ is absent in an installed copy)."""
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
REPORTS_DIR = REPO_ROOT / "reports"
# An installed package ships configs/ as cifar_common/configs (pyproject.toml); a clone has it at the top.
CONFIG_DIR = PACKAGE_DIR / "configs" if (PACKAGE_DIR / "configs").is_dir() else REPO_ROOT / "configs"
