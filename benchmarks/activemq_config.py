"""What an ActiveMQ Classic broker for the comparison is made of, free of processes: its activemq.xml,
its log4j configuration and its java command line.

The broker has one connector, STOMP on a loopback address: no OpenWire (61616), no web console
(Jetty), no JMX (`useJmx="false"`, as Debian's own instance configuration has it). KahaDB keeps its
default `journalDiskSyncStrategy` (always): a receipted persistent SEND is on disk, as ours is.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

DEBIAN_HOME = Path("/usr/share/activemq")  # Debian's `activemq` package: bin/activemq.jar, lib/
DEBIAN_PACKAGE = "activemq"


@dataclass(frozen=True)
class Limits:
    """Generous for the scenarios (50,000 queued 1 KiB messages at most), bounded for a shared machine."""

    heap_mb: int = 1024  # -Xmx; Debian's instance options use 512
    memory_mb: int = 512  # systemUsage memoryUsage: producer flow control starts only past it
    store_mb: int = 8192  # storeUsage: KahaDB's disk budget
    temp_mb: int = 2048  # tempUsage: non-persistent messages spooled to disk


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def activemq_xml(data_dir: Path, host: str, port: int, limits: Limits = Limits()) -> str:
    """A minimal broker definition: KahaDB in `data_dir`, one STOMP connector on host:port (loopback)."""
    if not is_loopback(host):
        raise ValueError(f"the comparison binds loopback addresses only, not {host!r}")
    if not 0 < port < 65536:
        raise ValueError(f"not a port: {port}")
    data = quoteattr(str(data_dir))
    kahadb = quoteattr(str(data_dir / "kahadb"))
    uri = quoteattr(f"stomp://{host}:{port}")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans
         http://www.springframework.org/schema/beans/spring-beans.xsd
         http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="bench" persistent="true"
          useJmx="false" dataDirectory={data}>
    <persistenceAdapter>
      <kahaDB directory={kahadb}/>
    </persistenceAdapter>
    <systemUsage>
      <systemUsage>
        <memoryUsage><memoryUsage limit="{limits.memory_mb} mb"/></memoryUsage>
        <storeUsage><storeUsage limit="{limits.store_mb} mb"/></storeUsage>
        <tempUsage><tempUsage limit="{limits.temp_mb} mb"/></tempUsage>
      </systemUsage>
    </systemUsage>
    <transportConnectors>
      <transportConnector name="stomp" uri={uri}/>
    </transportConnectors>
  </broker>
</beans>
"""


# Debian's ActiveMQ logs through log4j 1.2 (slf4j-log4j12); the broker's own lines go to stdout.
LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=%-5p | %m%n
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN
"""

# What bin/activemq passes to a Java newer than 8 (the broker reflects into these modules).
_MODULE_FLAGS = (
    "--add-reads=java.xml=java.logging",
    *(f"--add-opens=java.base/{pkg}=ALL-UNNAMED"
      for pkg in ("java.security", "java.net", "java.lang", "java.util", "java.util.concurrent",
                  "java.util.concurrent.atomic")),
    "--add-opens=java.naming/javax.naming.spi=ALL-UNNAMED",
    "--add-opens=java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED",
    *(f"--add-exports=java.base/sun.net.www.protocol.{p}=ALL-UNNAMED" for p in ("http", "https", "jar")),
    "--add-exports=jdk.xml.dom/org.w3c.dom.html=ALL-UNNAMED",
    "--add-exports=jdk.naming.rmi/com.sun.jndi.url.rmi=ALL-UNNAMED",
)


def java_command(java: str, home: Path, base: Path, limits: Limits = Limits()) -> list[str]:
    """`activemq.jar start` in the foreground, as bin/activemq runs it but without the shell around it.

    `base` holds conf/ (activemq.xml, log4j.properties) and data/; `home` is the installation.
    """
    conf, data = base / "conf", base / "data"
    return [
        java, f"-Xms{min(512, limits.heap_mb)}m", f"-Xmx{limits.heap_mb}m",
        # Debian's activemq-options sets this: one thread per connection rather than a pool.
        "-Dorg.apache.activemq.UseDedicatedTaskRunner=true",
        f"-Dlog4j.configuration=file:{conf / 'log4j.properties'}",
        f"-Djava.io.tmpdir={base / 'tmp'}",
        *_MODULE_FLAGS,
        f"-Dactivemq.classpath={conf}", f"-Dactivemq.home={home}", f"-Dactivemq.base={base}",
        f"-Dactivemq.conf={conf}", f"-Dactivemq.data={data}",
        "-jar", str(home / "bin" / "activemq.jar"), "start", f"xbean:file:{conf / 'activemq.xml'}",
    ]


def write_base(base: Path, host: str, port: int, limits: Limits = Limits()) -> None:
    """conf/activemq.xml, conf/log4j.properties, data/ and tmp/ under `base` (a fresh temporary dir)."""
    for sub in ("conf", "data", "tmp"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "conf" / "activemq.xml").write_text(activemq_xml(base / "data", host, port, limits), "utf-8")
    (base / "conf" / "log4j.properties").write_text(LOG4J_PROPERTIES, "utf-8")
