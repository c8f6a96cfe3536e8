#!/usr/bin/env bash
# Kept for older instructions: firmware_config/install.sh installs every
# profile (pi4, pi5, jetson-orin) and takes the same options.
exec "$(dirname "${BASH_SOURCE[0]}")/install.sh" "$@"
