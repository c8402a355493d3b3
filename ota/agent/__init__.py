"""The hub's update agent: polls a hawkBit DDI server (goosebit or Eclipse hawkBit),
downloads and checks a signed RAUC bundle, installs it into the other slot, reboots into
it on trial, health-checks the trial boot, commits or rolls back, and reports the real
outcome. Standard library only; never imports hub/ (it must work when the hub is broken).
"""
