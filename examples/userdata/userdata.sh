#!/bin/bash
# UserData for an instance whose AMI has ecs-bootstrap baked in (packaging/packer/).
# CloudFormation fills ${AWS::StackName} and ${AWS::Region} (Fn::Base64 + Fn::Sub).
#
# The ecs-bootstrap.service unit starts at boot, before cloud-init runs this script, and does
# the work (zero-config: it discovers the stack from the instance's tags). This call is the
# fallback for when it could not discover the stack. Exactly one of them does the work:
# - run from UserData (inside cloud-final.service), ecs-bootstrap configures the instance here
#   (Init, ecs.config), then hands starting the services, the join wait and the signal to the
#   transient unit ecs-bootstrap-boot.service and exits 0 (ecs.service is ordered after
#   cloud-final, so waiting here for the agent would wait for itself);
# - when the boot unit holds /var/lib/ecs-bootstrap/run.lock or state.json says this instance
#   already signalled SUCCESS, this call exits 0 with "SKIPPED" at once.
# Output: the journal (journalctl -u ecs-bootstrap -u ecs-bootstrap-boot) and the console.
/usr/bin/ecs-bootstrap run --stack ${AWS::StackName} \
  --resource ApplicationAutoscalingLaunchTemplate \
  --signal-resource ApplicationAutoscaling --region ${AWS::Region}
