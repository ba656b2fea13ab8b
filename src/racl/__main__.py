from racl.cli import entry

raise SystemExit(entry())
