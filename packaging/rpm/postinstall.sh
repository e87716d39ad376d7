# State directory: run lock and state.json, readable by root only.
install -d -m 0700 /var/lib/ecs-bootstrap  # also /usr/lib/tmpfiles.d/ecs-bootstrap.conf, at every boot
chmod 0700 /var/lib/ecs-bootstrap
# First install: enable the unit (it starts at the next boot; baking an AMI must not run it).
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    systemctl enable ecs-bootstrap.service >/dev/null 2>&1 || :
fi
