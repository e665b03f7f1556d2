# Three redis-server pods, each on its own loopback address with its own volume.
statefulset "data" "cache" {
  image    = "redis:7-alpine"
  replicas = 3

  command = ["redis-server", "--bind", "${VOODU_POD_IP}", "--port", "6379", "--appendonly", "yes", "--save", ""]
  ports   = ["6379"]

  volume_claim "data" {
    mount_path = "/data"
  }

  probes {
    readiness {
      tcp_socket { port = 6379 }
      period = "200ms"
    }
  }
}
