#!/usr/bin/env bash
# Set up forge on a Debian 12 machine: boot loaders and build tools from
# Debian, libvirt and qemu for forge-agent, the Node dependencies, the build,
# and `forge` / `forge-agent` on PATH. Run as root from the repository:
#   sudo bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need_node=20
have=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$have" -lt "$need_node" ]; then
  echo "forge needs Node.js >= $need_node (found: $(node --version 2>/dev/null || echo none))." >&2
  echo "Debian 12's own nodejs package is 18; install Node 20 or later first (for example from NodeSource), then rerun." >&2
  exit 1
fi

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential python3 \
  ipxe pxelinux syslinux-common grub-efi-amd64-signed shim-signed \
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-dev lvm2

npm ci --no-audit --no-fund
npm run build
npm link --no-audit --no-fund >/dev/null
echo
echo "forge is installed: $(command -v forge), $(command -v forge-agent)"
if [ -d /run/systemd/system ]; then
  # The unit with ExecStart pointed at the forge just linked; installed, not started.
  sed "s#^ExecStart=/usr/bin/forge #ExecStart=$(command -v forge) #" scripts/forge.service >/etc/systemd/system/forge.service
  systemctl daemon-reload
  echo "systemd unit installed: systemctl enable --now forge   (logs: journalctl -u forge)"
fi
echo "start the server with:  forge serve        (data in /var/lib/forge, HTTP on :8080)"
