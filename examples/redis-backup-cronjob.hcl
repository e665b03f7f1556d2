# Seed 000's "Backup via voodu cronjob", with the S3 upload replaced by a local directory:
# every six hours (UTC) an RDB snapshot of the replica redis-2 lands in /var/backups/vd-redis.
#
#   mkdir -p /var/backups/vd-redis      # the bind source must exist on the process runtime
#   vd apply -f examples/redis-backup-cronjob.hcl
#   vd run cronjob/clowk-lp/redis-backup          # run it now, print its output
#   vd describe cronjob/clowk-lp/redis-backup     # next slot, last runs
#
# env_from pulls REDIS_PASSWORD from the redis's bucket. On docker, alpine:latest is the local
# stand-in ./scripts/build-redis-image builds (busybox + redis-cli, no apk), so the command
# installs nothing; on the process runtime it runs on this host with its redis-cli.
# (`vd redis:backup` and the redis block's `backup {}` do the same, verified, without a cronjob.)
redis "clowk-lp" "redis" {
  replicas = 3
}

cronjob "clowk-lp" "redis-backup" {
  schedule = "0 */6 * * *"
  image    = "alpine:latest"

  env_from = ["clowk-lp/redis"]
  volumes  = ["/var/backups/vd-redis:/backups"]

  command = ["sh", "-c", <<-EOT
    set -eu
    redis-cli -h redis-2.clowk-lp.voodu -a "$REDIS_PASSWORD" --no-auth-warning --rdb /backups/redis-$(date +%Y%m%d-%H%M%S).rdb
  EOT
  ]
}
