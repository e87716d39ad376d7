#!/bin/bash
# UserData for an instance whose AMI has ecs-bootstrap baked in (packaging/packer/).
# CloudFormation fills ${AWS::StackName} and ${AWS::Region} (Fn::Base64 + Fn::Sub).
#
# The ecs-bootstrap.service unit starts at boot, before cloud-init runs this script, and does
# the work (zero-config: it discovers the stack from the instance's tags). This call is the
# fallback for when it could not discover the stack; when the unit is working or done, it exits
# 0 at once ("SKIPPED": /var/lib/ecs-bootstrap/run.lock is held, or state.json says done).
#
# systemd-run, not a direct call: ecs.service is ordered after cloud-final.service, which runs
# this script, so a direct call would wait for an ECS agent that cannot start before it returns.
# Its output goes to the journal and the console (aws ec2 get-console-output).
systemd-run --no-block --unit ecs-bootstrap-userdata \
  -p StandardOutput=journal+console -p StandardError=journal+console \
  -p EnvironmentFile=-/etc/ecs-bootstrap/env \
  /usr/bin/ecs-bootstrap run --stack ${AWS::StackName} \
    --resource ApplicationAutoscalingLaunchTemplate \
    --signal-resource ApplicationAutoscaling --region ${AWS::Region}
