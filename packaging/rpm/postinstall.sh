# State directory: run lock and state.json, readable by root only.
install -d -m 0700 /var/lib/ecs-bootstrap  # also /usr/lib/tmpfiles.d/ecs-bootstrap.conf, at every boot
chmod 0700 /var/lib/ecs-bootstrap
# First install: enable the unit (it starts at the next boot; baking an AMI must not run it).
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    systemctl enable ecs-bootstrap.service >/dev/null 2>&1 || :
fi
# ecs-bootstrap-hup.service (the cfn-hup replacement): enabled on opt-in only, when cfn-hup's
# configuration is there or /etc/ecs-bootstrap/env sets ECS_BOOTSTRAP_HUP=1. Not started here
# (an image build must not poll); it starts at the next boot.
if command -v systemctl >/dev/null 2>&1 && { [ -f /etc/cfn/cfn-hup.conf ] || grep -qsx 'ECS_BOOTSTRAP_HUP=1' /etc/ecs-bootstrap/env; }; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    systemctl enable ecs-bootstrap-hup.service >/dev/null 2>&1 || :
fi
