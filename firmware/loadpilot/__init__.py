# LoadPilot firmware package. See README.md and DESIGN notes for the architecture.
VERSION = "0.1.0"
