"""Where the repository keeps its committed results (absent in an installed copy)."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REPORTS_DIR = REPO_ROOT / "reports"
