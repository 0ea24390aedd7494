# LoadPilot's own Modbus stack: PDU serving (pdu), register images (image), Modbus TCP server and client.
# The RTU side (CRC, RTU framing, slave/master, proxy) builds on the same pdu/image/Router interface.
