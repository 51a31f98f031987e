#!/usr/bin/env bash
# Set up forge on a Debian 12 machine: boot loaders and build tools from
# Debian, libvirt and qemu for forge-agent, the Node dependencies, the build,
# `forge` / `forge-agent` on PATH and bash completion. From the repository,
# as root (a bare Debian root shell has no sudo):
#   bash scripts/setup.sh
# or from a user account that has sudo:
#   bash scripts/setup.sh        (it calls sudo for the system-wide steps)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# Root runs everything directly; anyone else needs sudo for apt, npm link and /etc.
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup.sh installs Debian packages and writes /etc: run it as root (su -, then bash scripts/setup.sh) or install sudo." >&2
  exit 1
fi

need_node=20
have=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$have" -lt "$need_node" ]; then
  echo "forge needs Node.js >= $need_node (found: $(node --version 2>/dev/null || echo none))." >&2
  echo "Debian 12's own nodejs package is 18; install Node 20 or later first (for example from NodeSource), then rerun." >&2
  exit 1
fi

"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  build-essential python3 bash-completion \
  ipxe pxelinux syslinux-common grub-efi-amd64-signed shim-signed \
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-dev lvm2 radvd

npm ci --no-audit --no-fund
npm run build
"${as_root[@]}" npm link --no-audit --no-fund >/dev/null
forge_bin=$(command -v forge)
echo
echo "forge is installed: $forge_bin, $(command -v forge-agent)"
"${as_root[@]}" mkdir -p /etc/bash_completion.d
"$forge_bin" completion bash | "${as_root[@]}" tee /etc/bash_completion.d/forge >/dev/null
echo "bash completion: /etc/bash_completion.d/forge (new shells)"
if [ -d /run/systemd/system ]; then
  # The unit with ExecStart pointed at the forge just linked; installed, not started.
  sed "s#^ExecStart=/usr/bin/forge #ExecStart=$forge_bin #" scripts/forge.service | "${as_root[@]}" tee /etc/systemd/system/forge.service >/dev/null
  "${as_root[@]}" systemctl daemon-reload
  echo "systemd unit installed: systemctl enable --now forge   (logs: journalctl -u forge)"
fi
echo "start the server (as root) with:  forge serve        (data in /var/lib/forge, HTTP on :8080)"
