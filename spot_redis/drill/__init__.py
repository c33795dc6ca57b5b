"""The interruption drill's measuring side, shared by the lab drill (lab/drill.py) and the drill against a stack:
a writer that logs every write Redis acknowledged (writer.py), and what the drill reports (report.py)."""
