# Last removal: disable the unit (a running bootstrap is left to finish).
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload disable ecs-bootstrap.service >/dev/null 2>&1 || :
    systemctl --no-reload disable --now ecs-bootstrap-hup.service >/dev/null 2>&1 || :
fi
