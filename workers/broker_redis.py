"""kombu's Redis transport, with each delivery's claimant recorded so that a restart reclaims.

kombu emulates acks on Redis: a delivered message waits in the ``unacked`` hash
(its delivery time in ``unacked_index``) until acked, and is pushed back to its
queue once it is older than ``visibility_timeout``. A worker SIGKILLed
mid-task therefore delays its task by the whole timeout (15 minutes by
default), even when it is restarted seconds later on the same host.

Here every delivery also records its claimant (``host:pid:start``, see
:mod:`workers.identity`) in an ``unacked_owner`` hash beside kombu's, removed
with kombu's own entries on ack, reject and restore. A channel that starts
consuming first restores, through kombu's own ``restore_by_tag``, every unacked
message whose claimant is provably dead: same host, process gone. Other hosts'
claims still wait for the visibility timeout.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

from workers.identity import provably_dead, this_process

logger = logging.getLogger(__name__)

OWNER_KEY = "unacked_owner"  # delivery tag -> claimant, beside kombu's "unacked"


class ClaimantQoS(kombu_redis.QoS):
    """kombu's ack emulation, keeping the claimant of each unacked delivery."""

    def append(self, message: Any, delivery_tag: str) -> None:
        # the claimant first: an entry without its message is dropped on restore, while a
        # message without its claimant would wait for the visibility timeout
        with self.channel.conn_or_acquire() as client:
            client.hset(OWNER_KEY, delivery_tag, this_process())
        super().append(message, delivery_tag)

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        return super()._remove_from_indices(delivery_tag, pipe).hdel(OWNER_KEY, delivery_tag)


class ClaimantChannel(kombu_redis.Channel):
    """A Redis channel that redelivers dead claimants' messages when it starts consuming."""

    QoS = ClaimantQoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dead_claims_restored = False

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        if not self._dead_claims_restored:
            self._restore_dead_claims()
            self._dead_claims_restored = True
        return super().basic_consume(queue, *args, **kwargs)

    def _restore_dead_claims(self) -> int:
        """Push back the unacked messages of processes of this host that are gone."""
        with self.conn_or_acquire() as client:
            owners = {
                bytes_to_str(tag): bytes_to_str(owner)
                for tag, owner in client.hgetall(OWNER_KEY).items()
            }
            verdicts = {owner: provably_dead(owner) for owner in set(owners.values())}
            tags = [tag for tag, owner in owners.items() if verdicts[owner]]
            for tag in tags:  # a tag acked or restored meanwhile restores nothing
                self.qos.restore_by_tag(tag, client)
        if tags:
            dead = sorted(owner for owner, is_dead in verdicts.items() if is_dead)
            logger.warning(
                "redelivering %d message(s) claimed by dead worker(s) %s",
                len(tags),
                ", ".join(dead),
            )
        return len(tags)


class ClaimantTransport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`ClaimantChannel`: Celery's ``broker_transport``."""

    Channel = ClaimantChannel
