/** The XML-RPC codec: every value type both ways, and what it refuses. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCall, encodeFault, encodeResponse, parseXml, XmlRpcDate, XmlRpcDecodeError } from '../../server/protocol/xmlrpc/codec.js';

test('decodes every value type a client sends', () => {
  const c = decodeCall(`<?xml version='1.0'?>
<!-- a comment -->
<methodCall><methodName>modify_system</methodName><params>
<param><value><string>a &lt;b&gt; &amp; &#233;&#x263A;</string></value></param>
<param><value>bare text</value></param>
<param><value><int>-42</int></value></param>
<param><value><i4>7</i4></value></param>
<param><value><boolean>1</boolean></value></param>
<param><value><double>2.5</double></value></param>
<param><value><dateTime.iso8601>20261201T10:00:00</dateTime.iso8601></value></param>
<param><value><base64>aGVsbG8=</base64></value></param>
<param><value><nil/></value></param>
<param><value><array><data><value><int>1</int></value><value><string><![CDATA[<x>]]></string></value></data></array></value></param>
<param><value><struct><member><name>macaddress-eth0</name><value><string>52:54:00:00:00:01</string></value></member></struct></value></param>
</params></methodCall>`);
  assert.equal(c.method, 'modify_system');
  assert.deepEqual(c.params.slice(0, 6), ['a <b> & é☺', 'bare text', -42, 7, true, 2.5]);
  assert.ok(c.params[6] instanceof XmlRpcDate && c.params[6].iso === '20261201T10:00:00');
  assert.equal((c.params[7] as Buffer).toString(), 'hello');
  assert.deepEqual(c.params.slice(8), [null, [1, '<x>'], { 'macaddress-eth0': '52:54:00:00:00:01' }]);
});

test('encodes responses and faults that round-trip through the decoder', () => {
  const xml = encodeResponse({ a: [1, 2.5, true, 'x<&>', null], big: 2 ** 40 });
  const asCall = xml.replace('<methodResponse><params>', '<methodCall><methodName>r</methodName><params>').replace('</methodResponse>', '</methodCall>');
  assert.deepEqual(decodeCall(asCall).params, [{ a: [1, 2.5, true, 'x<&>', null], big: 2 ** 40 }]);
  assert.match(xml, /<double>1099511627776<\/double>/, 'beyond i4 is a double');
  assert.match(encodeFault(1, 'bad <thing>'), /<fault><value><struct><member><name>faultCode<\/name><value><int>1<\/int><\/value><\/member><member><name>faultString<\/name><value><string>bad &lt;thing&gt;<\/string>/);
  assert.throws(() => encodeResponse('nul\u0000'), RangeError);
});

test('refuses what it must not parse', () => {
  const bad = [
    '<!DOCTYPE x [<!ENTITY a "b">]><methodCall><methodName>p</methodName></methodCall>',
    '<methodCall><methodName>p</methodName>',
    '<methodCall><methodName>p</methodName></methodcall>',
    '<methodCall><methodName>p</methodName><params><param><value><int>1.5</int></value></param></params></methodCall>',
    '<methodCall><methodName>p</methodName><params><param><value><boolean>yes</boolean></value></param></params></methodCall>',
    '<methodCall><methodName>p</methodName><params><param><value><struct><member><name>__proto__</name><value>x</value></member></struct></value></param></params></methodCall>',
    '<methodCall><methodName>a b</methodName></methodCall>',
    '<methodCall><methodName>p</methodName><params><param><value>&bogus;</value></param></params></methodCall>',
    '<methodResponse/>',
    `<methodCall><methodName>p</methodName><params><param>${'<value><array><data>'.repeat(70)}</param></params></methodCall>`,
  ];
  for (const b of bad) assert.throws(() => decodeCall(b), XmlRpcDecodeError, b.slice(0, 60));
  assert.throws(() => parseXml('<a/><b/>'), XmlRpcDecodeError);
});
