# Take the old provider's access away from a handful of Linux servers.
# Against local lab hosts: `make lab` in one terminal, then
#   bin/switchover apply -var-file /tmp/switchover-lab/lab.vars.json runbooks/linux-servers
runbook "acme-servers-leave-oldmsp" {
  client       = "Acme Bakery GmbH"
  old_provider = "OldMSP GmbH"
  new_provider = "NewMSP AG"
}

variable "servers" {
  description = "The servers and NAS boxes: name => { address = \"10.0.0.5\", port = 22 } (port may be left out)"
  type = map(object({
    address = string
    port    = optional(number, 22)
  }))
}

variable "private_key_file" {
  description = "The new provider's SSH private key, authorized for root on every server"
}

variable "known_hosts" {
  description = "A known_hosts file with every server's host key (ssh-keyscan, each fingerprint checked on the console)"
}

variable "old_provider_key_comment" {
  description = "A regular expression matching the comments of the old provider's SSH keys"
  default     = "^oldmsp@"
}

variable "old_provider_mentions" {
  description = "Strings that name the old provider in cron jobs, units, rc.local and key comments: its domain, hosts, tools"
  type        = list(string)
  default     = ["oldmsp"]
}

variable "old_provider_account" {
  description = "The old provider's own account on the servers"
  default     = "oldmsp"
}

plugin "ssh" {
  user             = "root"
  private_key_file = var.private_key_file
  known_hosts      = var.known_hosts
}

# What was there before, for the handover.
step "ssh.inventory" "before" {
  for_each = var.servers
  host     = each.value.address
  port     = each.value.port
}

# The old provider's key, wherever it is authorized.
step "ssh.authorized_keys" "drop_oldmsp_keys" {
  for_each   = var.servers
  host       = each.value.address
  port       = each.value.port
  all_users  = true
  remove     = { comment_matches = var.old_provider_key_comment }
  depends_on = [step.before]
  on_failure = continue
}

# Ways in and jobs the old provider can leave without its account (keys
# as sshd resolves them, trusted CAs, cron, units, agents, UID 0...), read
# while planning: its keys found there are removed below; the rest are
# open items of the checklist with the command to run.
step "ssh.find_persistence" "sweep" {
  for_each = var.servers
  host     = each.value.address
  port     = each.value.port
  mentions = var.old_provider_mentions
}

step "ssh.authorized_keys" "drop_swept_keys" {
  for_each   = var.servers
  host       = each.value.address
  port       = each.value.port
  all_users  = true
  when       = length(step.sweep[each.key].outputs.old_key_fingerprints) > 0
  remove     = { fingerprints = step.sweep[each.key].outputs.old_key_fingerprints }
  depends_on = [step.drop_oldmsp_keys]
  on_failure = continue
}

# The old provider's trusted CAs, cron and rc.local lines and units the
# sweep found, on every server.
step "ssh.remove_persistence" "drop_swept_items" {
  for_each = merge([
    for name, s in step.sweep : { for id, f in s.outputs.removable : "${name}: ${id}" => merge(f, { server = name }) }
  ]...)
  host       = var.servers[each.value.server].address
  port       = var.servers[each.value.server].port
  kind       = each.value.kind
  object     = each.value.object
  value      = each.value.value
  on_failure = continue
}

step "ssh.remove_sudo" "oldmsp_sudo" {
  for_each   = var.servers
  host       = each.value.address
  port       = each.value.port
  users      = [var.old_provider_account]
  depends_on = [step.drop_oldmsp_keys]
}

step "ssh.lock_account" "oldmsp_account" {
  for_each   = var.servers
  host       = each.value.address
  port       = each.value.port
  account    = var.old_provider_account
  depends_on = [step.oldmsp_sudo]
}

# Every password the old provider knew.
step "ssh.rotate_password" "root" {
  for_each   = var.servers
  host       = each.value.address
  port       = each.value.port
  account    = "root"
  password   = secret("root@${each.key}", { length = 32 })
  depends_on = [step.oldmsp_account]
}

step "ssh.command" "handover_note" {
  for_each = var.servers
  host     = each.value.address
  port     = each.value.port
  command  = "printf 'Managed by NewMSP AG since the switchover.\\n' > /etc/motd.d-handover"
  creates  = "/etc/motd.d-handover"
}

step "core.manual" "vpn" {
  instructions = "Revoke the old provider's VPN profile on the firewall and check that its IP ranges no longer reach the servers."
  confirm_by   = "NewMSP engineer"
  depends_on   = [step.root]
}
