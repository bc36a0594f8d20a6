// Usage: node admin.js <bootstrap> <topic>
// kafkajs producer + admin only (no consumer): createTopics, producing keyed GZIP messages at
// explicit timestamps, fetchTopicOffsets, fetchTopicOffsetsByTimestamp, deleteTopicRecords,
// describeConfigs/alterConfigs, createPartitions, fetchTopicMetadata, describeCluster, and an
// idempotent producer. Prints one JSON summary line for tests/integration/test_kafkajs.py; every
// expected error is caught and reported by its Kafka error type.
const { Kafka, CompressionTypes, ConfigResourceTypes, logLevel } = require('kafkajs');

const BASE_TS = 1_700_000_000_000;

async function errorType(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    // KafkaJSProtocolError carries .type; the retrier wraps errors in KafkaJSNonRetriableError
    // with .cause; KafkaJSDeleteTopicRecordsError carries per-partition errors.
    for (let err = e; err; err = err.cause === err ? null : err.cause) {
      if (err.type) return err.type;
      if (err.partitions && err.partitions[0] && err.partitions[0].error) {
        return err.partitions[0].error.type;
      }
    }
    return `${e.name}: ${e.message}`;
  }
}

async function main() {
  const [bootstrap, topic] = process.argv.slice(2);
  const out = {};
  const kafka = new Kafka({
    clientId: 'brook-kafkajs-admin', brokers: [bootstrap], logLevel: logLevel.NOTHING,
    retry: { retries: 2, initialRetryTime: 100 },
  });
  const admin = kafka.admin();
  await admin.connect();

  out.created = await admin.createTopics({
    topics: [{ topic, numPartitions: 3, configEntries: [{ name: 'retention.ms', value: '86400000' }] }],
    waitForLeaders: true,
  });
  out.createdAgain = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  out.listed = (await admin.listTopics()).includes(topic);

  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let i = 0; i < 600; i++) {
    messages.push({ key: `key-${i}`, value: `value-${i}`, timestamp: `${BASE_TS + i * 1000}`,
                    headers: { n: `${i}` } });
  }
  out.sent = await producer.send({ topic, compression: CompressionTypes.GZIP, messages, acks: -1 });
  await producer.disconnect();

  out.offsets = await admin.fetchTopicOffsets(topic);
  out.byTimestamp = await admin.fetchTopicOffsetsByTimestamp(topic, BASE_TS + 300 * 1000);
  out.byFutureTimestamp = await admin.fetchTopicOffsetsByTimestamp(topic, BASE_TS + 10_000_000);

  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '5' }] });
  out.offsetsAfterDelete = await admin.fetchTopicOffsets(topic);
  const high1 = Number(out.offsets.find((p) => p.partition === 1).high);
  out.deleteBeyondHigh = await errorType(
    admin.deleteTopicRecords({ topic, partitions: [{ partition: 1, offset: `${high1 + 10}` }] }));

  const resource = { type: ConfigResourceTypes.TOPIC, name: topic };
  out.configsBefore = await admin.describeConfigs({ resources: [resource], includeSynonyms: false });
  await admin.alterConfigs({
    resources: [{ ...resource, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
  });
  out.configsAfter = await admin.describeConfigs({ resources: [resource], includeSynonyms: false });
  out.alterUnknown = await errorType(admin.alterConfigs({
    resources: [{ ...resource, configEntries: [{ name: 'no.such.config', value: '1' }] }],
  }));

  out.metadataBefore = await admin.fetchTopicMetadata({ topics: [topic] });
  await admin.createPartitions({ topicPartitions: [{ topic, count: 5 }] });
  out.shrink = await errorType(admin.createPartitions({ topicPartitions: [{ topic, count: 2 }] }));
  out.metadataAfter = await admin.fetchTopicMetadata({ topics: [topic] });
  out.cluster = await admin.describeCluster();

  // An idempotent producer (InitProducerId, sequence numbers) on a second topic.
  const idem = `${topic}-idem`;
  await admin.createTopics({ topics: [{ topic: idem, numPartitions: 1 }], waitForLeaders: true });
  const ip = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await ip.connect();
  for (let b = 0; b < 10; b++) {
    const batch = [];
    for (let i = 0; i < 50; i++) batch.push({ key: null, value: `idem-${b * 50 + i}` });
    await ip.send({ topic: idem, messages: batch, acks: -1 });
  }
  await ip.disconnect();
  out.idempotentOffsets = await admin.fetchTopicOffsets(idem);

  await admin.deleteTopics({ topics: [idem] });
  out.topicsAfterDelete = await admin.listTopics();
  await admin.disconnect();
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
