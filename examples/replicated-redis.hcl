# A replicated Redis with the built-in redis macro: three pods, pod 0 boots as master, the
# others replicate from cache-0.data.voodu. The password is generated into the resource's
# config bucket on first apply and never appears in the manifest.
redis "data" "cache" {
  replicas = 3
}

# An app that gets REDIS_URL / REDIS_READ_URL once you run:
#   vd redis:link data/cache web/app
deployment "web" "app" {
  image   = "redis:7-alpine" # used by the docker runtime; the process runtime runs host binaries
  command = ["sh", "-c", <<-EOT
    while true; do
      echo "REDIS_URL is $${REDIS_URL:-unset (run vd redis:link data/cache web/app)}" | sed 's/:[0-9a-f]*@/:<password>@/'
      [ -n "$${REDIS_URL:-}" ] && redis-cli -u "$REDIS_URL" incr visits
      sleep 5
    done
  EOT
  ]
}
