# Take the old provider's access away from a handful of Linux servers.
# Against local lab hosts: `make lab` in one terminal, then
#   bin/switchover apply -var-file /tmp/switchover-lab/lab.vars.json runbooks/linux-servers
runbook "acme-servers-leave-oldmsp" {
  client       = "Acme Bakery GmbH"
  old_provider = "OldMSP GmbH"
  new_provider = "NewMSP AG"
}

variable "lab_dir" {
  type        = string
  description = "Where the admin key and known_hosts are (make lab prints it)."
}

variable "hosts" {
  type        = map(number)
  description = "Host name => SSH port on 127.0.0.1."
}

plugin "ssh" {
  host             = "127.0.0.1"
  user             = "root"
  private_key_file = "${var.lab_dir}/admin_ed25519"
  known_hosts      = "${var.lab_dir}/known_hosts"
}

# What was there before, for the handover.
step "ssh.inventory" "before" {
  for_each = var.hosts
  port     = each.value
}

# The old provider's key, wherever it is authorized.
step "ssh.authorized_keys" "drop_oldmsp_keys" {
  for_each   = var.hosts
  port       = each.value
  all_users  = true
  remove     = { comment_matches = "^oldmsp@" }
  depends_on = [step.before]
  on_failure = continue
}

step "ssh.remove_sudo" "oldmsp_sudo" {
  for_each   = var.hosts
  port       = each.value
  users      = ["oldmsp"]
  depends_on = [step.drop_oldmsp_keys]
}

step "ssh.lock_account" "oldmsp_account" {
  for_each   = var.hosts
  port       = each.value
  account    = "oldmsp"
  depends_on = [step.oldmsp_sudo]
}

# Every password the old provider knew.
step "ssh.rotate_password" "root" {
  for_each   = var.hosts
  port       = each.value
  account    = "root"
  password   = secret("root@${each.key}", { length = 32 })
  depends_on = [step.oldmsp_account]
}

step "ssh.command" "handover_note" {
  for_each = var.hosts
  port     = each.value
  command  = "printf 'Managed by NewMSP AG since the switchover.\\n' > /etc/motd.d-handover"
  creates  = "/etc/motd.d-handover"
}

step "core.manual" "vpn" {
  instructions = "Revoke the old provider's VPN profile on the firewall and check that its IP ranges no longer reach the servers."
  confirm_by   = "NewMSP engineer"
  depends_on   = [step.root]
}
