"""What of an ActiveMQ 5.x `activemq.xml` BatonMQ ignores, and what it refuses.

A user's file carries many settings that tune a JVM broker and mean nothing here: those are ignored
with one WARNING each, saying why. Settings that would change what clients see (other routing,
scheduled delivery, a store wiped at start) and that BatonMQ does not implement are refused, because
a broker that silently behaved otherwise would lose or misroute messages. The names are ActiveMQ
5.17's (the setters of BrokerService, KahaDBPersistenceAdapter, the lockers and TransportConnector).
"""

from __future__ import annotations

from config.xmltree import Known


def names(text: str) -> list[str]:
    """Attribute names written as words, as the tables below list many."""
    return text.split()


_NO_JMX = "BatonMQ has no JMX; metrics and health are served over HTTP (metrics_port)"
_JVM = "a JVM or Spring setting with no equivalent here"
_NO_ADVISORIES = "BatonMQ publishes no advisory topics"
_STORE_TUNING = "store tuning with no equivalent in BatonMQ's stores"
_TEMP = "temporary destinations are not stored"
_CLUSTER = "no network of brokers here; clients use a failover: URL"
_ALWAYS_LOCKS = "BatonMQ always locks the data directory; that lock is what makes one master"
# LockableServiceSupport's attributes, on every persistence adapter.
_LOCKING_IGNORED = {"stopOnError": "a master that loses its lock always stops serving (exit 3)"}
_LOCKING_ONLY = {"useLock": ("true", _ALWAYS_LOCKS)}

BROKER = Known(
    ignored={
        **dict.fromkeys(names("""useJmx brokerObjectName mbeanInvocationTimeout populateUserNameInMBeans
                                 enableStatistics"""), _NO_JMX),
        **dict.fromkeys(names("""useShutdownHook id start startAsync restartAllowed dedicatedTaskRunner
                                 taskRunnerPriority persistenceThreadPriority systemExitOnShutdown
                                 systemExitOnShutdownExitCode useLoggingForShutdownErrors
                                 useLocalHostBrokerName brokerId adjustUsageLimits storeOpenWireVersion
                                 rollbackOnlyOnAsyncException
                                 monitorConnectionSplits schedulePeriodForDiskUsageCheck
                                 diskUsageCheckRegrowThreshold"""), _JVM),
        **dict.fromkeys(names("advisorySupport anonymousProducerAdvisorySupport"), _NO_ADVISORIES),
        **dict.fromkeys(names("""networkConnectorStartAsync shutdownOnMasterFailure shutdownOnSlaveFailure
                                 waitForSlave waitForSlaveTimeout passiveSlave"""), _CLUSTER),
        **dict.fromkeys(names("""cacheTempDestinations timeBeforePurgeTempDestinations
                                 allowTempAutoCreationOnSend tmpDataDirectory"""), _TEMP),
        "maxPurgedDestinationsPerSweep": "every collectable destination is removed in each sweep",
        "splitSystemUsageForProducersConsumers": "memory is one budget here ([limits])",
        "producerSystemUsagePortion": "memory is one budget here ([limits])",
        "consumerSystemUsagePortion": "memory is one budget here ([limits])",
        "useVirtualTopics": "BatonMQ has no virtual topics; a topic delivers to its subscribers only",
        "populateJMSXUserID": "BatonMQ adds no JMSXUserID header",
        "useAuthenticatedPrincipalForJMSXUserID": "BatonMQ adds no JMSXUserID header",
        "keepDurableSubsActive": "durable subscriptions keep their messages either way",
        "offlineDurableSubscriberTimeout": "offline durable subscriptions are kept until unsubscribed",
        "offlineDurableSubscriberTaskSchedule": "offline durable subscriptions are kept until unsubscribed",
        "enableMessageExpirationOnActiveDurableSubs": "expired messages are dropped on delivery either way",
        "maxSchedulerRepeatAllowed": "no scheduler (schedulerSupport must be false)",
        "schedulerDirectory": "no scheduler (schedulerSupport must be false)",
    },
    only={
        "schedulerSupport": ("false", "BatonMQ has no scheduled delivery (AMQ_SCHEDULED_DELAY headers)"),
        "deleteAllMessagesOnStartup": ("false", "BatonMQ never wipes its store at start"),
        "useMirroredQueues": ("false", "BatonMQ has no mirrored queues"),
        "useTempMirroredQueues": ("false", "BatonMQ has no mirrored queues"),
        "rejectDurableConsumers": ("false", "BatonMQ accepts durable subscriptions"),
        "useVirtualDestSubs": ("false", "BatonMQ has no virtual destinations"),
        "useVirtualDestSubsOnCreation": ("false", "BatonMQ has no virtual destinations"),
    },
)

# <broker> children. Each ignored one gets one WARNING naming it.
IGNORED_ELEMENTS = {
    "managementContext": _NO_JMX,
    "shutdownHooks": "no Spring context to shut down",
    "destinations": "destinations are created when first used",
    "services": _JVM,
    "adminView": _NO_JMX,
    "brokerContext": _JVM,
    "ioExceptionHandler": "a store I/O error stops the master (exit 1) and a slave takes over",
    "taskRunnerFactory": _JVM,
    "persistenceTaskRunnerFactory": _JVM,
    "tempDataStore": "BatonMQ's temporary store is its own, in <data_dir>/tmp/ (limits.non_persistent, "
                     "limits.temp_usage)",
    "jobSchedulerStore": "no scheduler (schedulerSupport must be false)",
}
# Containers that are harmless empty and refused with anything inside.
REFUSED_IF_FILLED = {
    "networkConnectors": "networks of brokers are not supported; clients use a failover: URL",
    "proxyConnectors": "proxy connectors are not supported",
    "jmsBridgeConnectors": "JMS bridges are not supported",
    "destinationInterceptors": "virtual and mirrored destinations are not supported: messages would be "
                               "routed differently",
}
REFUSED_ELEMENTS = {
    "persistenceFactory": "journaled JDBC is not supported; use <persistenceAdapter>",
    "sslContext": "Java key stores are not read; remove <sslContext> and give PEM files as tls.cert, "
                  "tls.key and tls.ca (--tls-cert/--tls-key/--tls-ca, BATONMQ_TLS_*, or [tls] in TOML)",
    "networkConnectorURIs": REFUSED_IF_FILLED["networkConnectors"],
    "transportConnectorURIs": "write the connectors as <transportConnectors>",
    "messageAuthorizationPolicy": "message-level authorization is not supported",
    "regionBroker": "a custom region broker is not supported",
    "destinationFactory": "a custom destination factory is not supported",
}
# Split usages (config/xmlusage.py reads <systemUsage>): passed over as before, unreported.
LEFT_ALONE = frozenset({"producerSystemUsage", "consumerSystemUsage"})

_KAHADB_IGNORED = names("""
    indexCacheSize indexWriteBatchSize enableIndexWriteAsync enableIndexDiskSyncs enableIndexPageCaching
    enableIndexRecoveryFile indexLFUEvictionFactor useIndexLFRUEviction indexDirectory
    journalMaxWriteBatchSize maxAsyncJobs preallocationScope preallocationStrategy
    concurrentStoreAndDispatchQueues concurrentStoreAndDispatchTopics databaseLockedWaitDelay
    enableAckCompaction compactAcksAfterNoGC
    compactAcksIgnoresStoreGrowth cleanupOnStop enableSubscriptionStatistics archiveCorruptedIndex
    forceRecoverIndex brokerName failoverProducersAuditDepth maxFailoverProducersToTrack
    purgeRecoveredXATransactionStrategy""")
KAHADB = Known(
    ignored={
        **dict.fromkeys(_KAHADB_IGNORED, _STORE_TUNING),
        "checksumJournalFiles": "the journal always checksums its records (CRC32C)",
        "checkForCorruptJournalFiles": "recovery always checks every record's checksum",
        "archiveDataLogs": "data files with no live message are deleted, not archived",
        "directoryArchive": "data files with no live message are deleted, not archived",
        **_LOCKING_IGNORED,
    },
    only={
        **_LOCKING_ONLY,
        "ignoreMissingJournalfiles": ("false", "a missing data file is an error, never skipped"),
    },
)
LEVELDB = Known(ignored=dict.fromkeys(names("""
    logSize verifyChecksums paranoidChecks indexFactory indexMaxOpenFiles indexBlockRestartInterval
    indexWriteBufferSize indexBlockSize indexCacheSize indexCompression logCompression asyncBufferSize
    flushDelay brokerName"""), _STORE_TUNING) | _LOCKING_IGNORED, only=_LOCKING_ONLY)
AMQ_ADAPTER = Known(ignored=dict.fromkeys(names("""
    indexBinSize indexKeySize indexPageSize indexMaxBinSize indexLoadFactor persistentIndex useNIO
    maxCheckpointMessageAddSize maxReferenceFileLength archiveDataLogs directoryArchive brokerName
    forceRecoverReferenceStore recoverReferenceStore journalThreadPriority useDedicatedTaskRunner"""),
    _STORE_TUNING) | _LOCKING_IGNORED, only=_LOCKING_ONLY)
ADAPTERS = {"kahaDB": KAHADB, "levelDB": LEVELDB, "amqPersistenceAdapter": AMQ_ADAPTER}

SHARED_FILE_LOCKER = Known(
    ignored={"name": "a label for ActiveMQ's logs"},
    only={"failIfLocked": ("false", "a broker that finds the lock held waits as a slave")},
)
