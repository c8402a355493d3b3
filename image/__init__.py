"""CydYnni Hub image builder: stages from stage-scripts/ turned into a flashable SD image."""
