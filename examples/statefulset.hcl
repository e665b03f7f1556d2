# A replicated Redis from a plain statefulset: pod 0 is the master, the others replicate from
# it by its pod name. (The `redis` macro in replicated-redis.hcl does this, and more.)
statefulset "data" "plain" {
  replicas = 3

  command = ["sh", "-c", <<-EOT
    set -eu
    if [ "$VOODU_REPLICA_ORDINAL" != 0 ]; then
      set -- --replicaof plain-0.data.voodu 6379
    fi
    exec redis-server --bind "$VOODU_POD_IP" --port 6379 --dir /data --appendonly yes "$@"
  EOT
  ]
  ports = ["6379"]

  volume_claim "data" {
    mount_path = "/data"
  }

  probes {
    liveness {
      tcp_socket { port = 6379 }
      period = "5s"
    }
    readiness {
      exec { command = ["redis-cli", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "1s"
    }
  }
}
