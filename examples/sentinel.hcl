# Seed 000's two-resource HA pattern: a replicated data redis and a sentinel sibling watching
# it. Three redis-sentinel pods (quorum 2) fail the master over; vd follows them and keeps
# REDIS_MASTER_ORDINAL and linked apps' URLs true.
#   vd redis:link data/cache web/app --sentinel   # REDIS_URL, REDIS_SENTINEL_HOSTS, REDIS_MASTER_NAME, REDIS_SENTINEL_PASSWORD
#   vd redis:info data/cache                      # pods, and what each sentinel believes
#   vd redis:sentinel-url data/cache              # redis-sentinel://cache-ha-0.data.voodu:26379,.../voodu-master
redis "data" "cache" {
  replicas = 3
}

redis "data" "cache-ha" {
  sentinel {
    monitor = "data/cache"
  }
}
