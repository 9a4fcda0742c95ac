# Vendor access windows: the new provider's rule "vendor accounts are off,
# except for a booked, supervised window", as a program. The line-of-business
# software's support gets its AD account (and, on the servers it needs, its
# SSH key and a sudo rule) only inside windows booked at least 7 days ahead
# and approved in writing; each opens at its start with an end the system
# enforces by itself (accountExpires, expiry-time, NOTAFTER) and is closed at
# its end. The client and the vendor get a notice when a window is booked,
# opened and closed. Run `switchover apply` from a timer (every few
# minutes): between events the steps are due later, at the next start or
# end; the systems end a window even if it never runs again.

runbook "vendor-access" {
  description = "Vendor accounts off, except in booked, supervised, time-limited windows"
}

variable "dc" {
  description = "The domain controller: ldaps://dc1.example.local or ldap://... (StartTLS)"
}
variable "ca_file" {
  description = "PEM file of the CA that signed the DC's LDAPS certificate"
}
variable "bind_dn" {
  description = "An admin of the new provider that switchover binds as"
}
variable "bind_password" {
  description = "That account's password"
  sensitive   = true
}
variable "vendor_account" {
  description = "The vendor's AD account (sAMAccountName, UPN or DN): disabled outside its windows"
}
variable "windows" {
  description = "The booked windows: [{ name, start, end, booked_at, booked_by, approved_by, reason }] (times RFC 3339; reason only when booked at shorter notice than 7 days)"
  type = list(object({
    name        = optional(string)
    start       = string
    end         = string
    booked_at   = string
    booked_by   = string
    approved_by = string
    reason      = optional(string)
  }))
}
variable "max_length" {
  description = "The longest window allowed"
  default     = "12h"
}
variable "admin_reason" {
  description = "Why the vendor's access may carry admin rights (null: an access with admin rights is refused)"
  type        = string
  default     = null
}
variable "servers" {
  description = "Servers the vendor reaches over SSH in its windows: name => { address, port, account, public_key, sudo_commands }"
  type = map(object({
    address       = string
    port          = optional(number, 22)
    account       = string
    public_key    = string
    sudo_commands = optional(list(string), [])
  }))
  default = {}
}
variable "ssh_private_key_file" {
  description = "The new provider's key that logs in to the servers as root"
  default     = null
}
variable "ssh_known_hosts" {
  description = "A known_hosts file with every server's host key (needed with servers: the empty default trusts no host)"
  default     = "/dev/null"
}
variable "smtp_server" {
  description = "SMTP server for the notices, host:port (STARTTLS); null: no mail, confirm in writing by hand"
  type        = string
  default     = null
}
variable "smtp_username" {
  type    = string
  default = null
}
variable "smtp_password" {
  type      = string
  default   = null
  sensitive = true
}
variable "smtp_ca_file" {
  description = "PEM file of the CA of the SMTP server's certificate (null: the system's)"
  type        = string
  default     = null
}
variable "mail_from" {
  type    = string
  default = null
}
variable "mail_to" {
  description = "Who gets the notices: the client's IT contact and the vendor"
  type        = list(string)
  default     = []
}

plugin "ad" {
  server        = var.dc
  ca_file       = var.ca_file
  bind_dn       = var.bind_dn
  bind_password = var.bind_password
}

plugin "ssh" {
  user             = "root"
  private_key_file = var.ssh_private_key_file
  known_hosts      = var.ssh_known_hosts
}

step "ad.access_window" "vendor" {
  account       = var.vendor_account
  windows       = var.windows
  max_length    = var.max_length
  admin_reason  = var.admin_reason
  smtp_server   = var.smtp_server
  smtp_username = var.smtp_username
  smtp_password = var.smtp_password
  smtp_ca_file  = var.smtp_ca_file
  mail_from     = var.mail_from
  mail_to       = var.mail_to
}

# The servers' notices go with the AD account's: one mail per event.
step "ssh.access_window" "server" {
  for_each      = var.servers
  host          = each.value.address
  port          = each.value.port
  account       = each.value.account
  public_key    = each.value.public_key
  sudo_commands = each.value.sudo_commands
  windows       = var.windows
  max_length    = var.max_length
  admin_reason  = var.admin_reason
}
