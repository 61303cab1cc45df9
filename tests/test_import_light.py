import subprocess
import sys


def test_import_does_not_pull_heavy_frameworks():
    code = (
        "import sys, chase_integrations, chase_integrations.carbon, chase_integrations.forecast, "
        "chase_integrations.core, chase_integrations.errors, chase_integrations.plain\n"
        "from chase_integrations import Chase\n"
        "heavy = [m for m in ('torch', 'lightning', 'transformers', 'statsmodels', 'accelerate') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported: {out.stdout.strip()}"
