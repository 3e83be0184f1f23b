"""Profiles: `params.yaml` holds the default profile; `profiles/<name>.yaml` holds overrides.

    python -m tripost.profiles apply smoke      # merge profiles/smoke.yaml into params.yaml
    git checkout params.yaml                    # back to the default profile

The merge keeps params.yaml's comments and key order (ruamel.yaml round trip), so `git diff`
shows exactly what a profile changes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ruamel.yaml import YAML

from tripost.io import atomic_path


def _merge_into(target, override) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = value


def apply_profile(name: str, params_path: str | Path = "params.yaml", profiles_dir: str | Path | None = None) -> Path:
    params_path = Path(params_path)
    profiles_dir = Path(profiles_dir) if profiles_dir else params_path.parent / "profiles"
    overlay_path = profiles_dir / f"{name}.yaml"
    if name == "default":
        return params_path
    if not overlay_path.exists():
        known = sorted(p.stem for p in profiles_dir.glob("*.yaml"))
        raise ValueError(f"no profile {name!r}: {overlay_path} does not exist (known: default, {', '.join(known)})")
    yaml = YAML()
    yaml.preserve_quotes = True
    params = yaml.load(params_path.read_text())
    overlay = yaml.load(overlay_path.read_text()) or {}  # round trip: keeps "1.0e-6" a float for PyYAML
    from tripost.config import check

    import yaml as pyyaml

    check(pyyaml.safe_load(overlay_path.read_text()) or {}, str(overlay_path))  # before params.yaml is touched
    _merge_into(params, overlay)
    params["profile"] = name
    with atomic_path(params_path) as tmp, tmp.open("w") as f:
        yaml.dump(params, f)
    return params_path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_apply = sub.add_parser("apply", help="merge profiles/NAME.yaml into params.yaml")
    p_apply.add_argument("name")
    p_apply.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    path = apply_profile(args.name, args.params)
    print(f"{path}: profile {args.name!r} applied")


if __name__ == "__main__":
    main()
