"""The image service: image stores per zone, templates and ISOs, their downloads and checks (DESIGN §2, §7)."""
