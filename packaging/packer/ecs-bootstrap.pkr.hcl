# Bakes ecs-bootstrap into an ECS-optimized AMI (AL2023 or AL2, x86_64 or arm64/Graviton).
#
#   packaging/build                    # makes target/packages/*.rpm
#   packer init packaging/packer && packer build -var os=al2023 -var arch=arm64 packaging/packer
#
# What the image gets: /usr/bin/ecs-bootstrap, ecs-bootstrap.service (enabled, not started: it
# runs at the first boot of each instance), the ecs.service drop-in that starts the agent only
# once ecs-bootstrap has written its config, /etc/ecs-bootstrap/env, /var/lib/ecs-bootstrap (0700,
# empty), and the CloudWatch agent (an `ecs-bootstrap:` block with a `Logs` key requires it).
# Nothing is run at bake time, so no instance state is baked into the image; ecs-bootstrap also
# ignores a state file whose instance id is not its own.

packer {
  required_plugins {
    amazon = {
      version = ">= 1.3.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}

variable "os" {
  type        = string
  default     = "al2023"
  description = "al2023 or al2"
}

variable "arch" {
  type        = string
  default     = "x86_64"
  description = "x86_64 or arm64"
}

variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "packages_dir" {
  type    = string
  default = "target/packages"
}

locals {
  # The ECS-optimized AMIs' names (owner amazon).
  source_name = {
    al2023 = "al2023-ami-ecs-hvm-*-kernel-6.1-${var.arch}"
    al2    = "amzn2-ami-ecs-hvm-*-${var.arch}-ebs"
  }[var.os]
  rpm_arch      = var.arch == "arm64" ? "aarch64" : "x86_64"
  instance_type = var.arch == "arm64" ? "t4g.small" : "t3.small"
  timestamp     = formatdate("YYYYMMDDhhmm", timestamp())
}

source "amazon-ebs" "ecs" {
  region        = var.region
  instance_type = local.instance_type
  ssh_username  = "ec2-user"
  ami_name      = "ecs-bootstrap-${var.os}-${var.arch}-${local.timestamp}"
  source_ami_filter {
    filters = {
      name                = local.source_name
      virtualization-type = "hvm"
    }
    owners      = ["amazon"]
    most_recent = true
  }
  # IMDSv2 only on the build instance, as on the fleet.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }
}

build {
  sources = ["source.amazon-ebs.ecs"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/ecs-bootstrap"]
  }

  provisioner "file" {
    source      = "${var.packages_dir}/"
    destination = "/tmp/ecs-bootstrap/"
  }

  # --- the provisioner to copy into an existing AMI build -------------------------------------
  provisioner "shell" {
    # Packer passes environment_vars only through {{ .Vars }} (tests/test_lint.py runs it so).
    execute_command = "sudo env {{ .Vars }} sh -eu '{{ .Path }}'"
    environment_vars = ["RPM_ARCH=${local.rpm_arch}"]
    inline = [
      # yum on AL2, dnf on AL2023: both install a local RPM with its scriptlets (state dir 0700,
      # unit enabled).
      "if command -v dnf >/dev/null; then PM=dnf; else PM=yum; fi",
      "$PM install -y /tmp/ecs-bootstrap/ecs-bootstrap-*.$RPM_ARCH.rpm amazon-cloudwatch-agent",
      "systemctl is-enabled ecs-bootstrap.service",
      "systemctl show -p After ecs.service | grep -q ecs-bootstrap.service",
      "/usr/bin/ecs-bootstrap --version",
      # The image must not carry any instance's state or agent registration.
      "rm -rf /var/lib/ecs-bootstrap/* /var/lib/ecs/data/* /tmp/ecs-bootstrap",
    ]
  }
}
