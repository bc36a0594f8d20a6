// Usage: node roundtrip.js <bootstrap> <topic> <group>
// Creates a 3-partition topic, produces 300 keyed gzip messages, reads them back in a consumer
// group, commits, and prints a JSON summary for the Python test to check.
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

async function main() {
  const [bootstrap, topic, groupId] = process.argv.slice(2);
  const kafka = new Kafka({ clientId: 'brook-kafkajs', brokers: [bootstrap], logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let i = 0; i < 300; i++) messages.push({ key: `k${i}`, value: `v${i}`, headers: { n: `${i}` } });
  const sent = await producer.send({ topic, compression: CompressionTypes.GZIP, messages, acks: -1 });
  const offsets = await admin.fetchTopicOffsets(topic);

  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const received = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${received.length} received`)), 60000);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        received.push({ key: message.key.toString(), value: message.value.toString(), partition,
                        offset: message.offset, header: message.headers.n.toString() });
        if (received.length === 300) { clearTimeout(timer); resolve(); }
      },
    }).catch(reject);
  });
  await consumer.commitOffsets([]);
  await consumer.disconnect();
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
  const groups = await admin.listGroups();
  await producer.disconnect();
  await admin.disconnect();
  console.log(JSON.stringify({ created, sent, offsets, received, committed, groups }));
}

main().catch((e) => { console.error(e); process.exit(1); });
