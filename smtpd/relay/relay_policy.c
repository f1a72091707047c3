/* relay_policy.c - retry schedule and queue lifetime. */
#include "relay_policy.h"

int64_t
relay_backoff(int attempts)
{
	int64_t d = RELAY_BACKOFF_FIRST;
	int i;

	for (i = 1; i < attempts && d < RELAY_BACKOFF_MAX; i++)
		d *= 2;
	return d < RELAY_BACKOFF_MAX ? d : RELAY_BACKOFF_MAX;
}

int
relay_policy_defer(int64_t now, int64_t created, int attempts,
    uint64_t max_queue_time, int64_t *next_r)
{
	int64_t expires = created + (int64_t)max_queue_time;
	int64_t next;

	if (now >= expires)
		return 1;
	next = now + relay_backoff(attempts);
	*next_r = next < expires ? next : expires;
	return 0;
}
