# coffer agent for examples/dynamic-db/app.py (see docs/tutorial-dynamic-db.md).
vault {
  address = "http://127.0.0.1:8200"
}

auto_auth {
  method "approle" {
    config = {
      role_id_file_path   = "role_id"
      secret_id_file_path = "secret_id"
    }
  }
}

# Dynamic credentials: renewed at 2/3 of their TTL, replaced before max_ttl.
template {
  contents    = <<-EOT
    {{ with secret "database/creds/app" }}{"host": "127.0.0.1", "port": 5432, "database": "postgres", "user": "{{ .Data.username }}", "password": "{{ .Data.password }}"}{{ end }}
  EOT
  destination = "db.json"
  perms       = "0600"
}

# The app reconnects on SIGHUP: no restart, no dropped query.
exec {
  command       = ["python3", "app.py"]
  reload_signal = "SIGHUP"
}
