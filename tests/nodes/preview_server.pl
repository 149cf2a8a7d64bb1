# A server for the node preview test, in the base image's perl (perl-base: no python there).
# GET: the body given as the second argument. A WebSocket upgrade: each text or binary frame
# echoed back; a close answered with a close.
use strict;
use IO::Socket::INET;
my ($port, $body) = @ARGV;
$SIG{CHLD} = "IGNORE";
my $server = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => $port, Listen => 16, ReuseAddr => 1)
  or die "listen: $!";
while (1) {
  my $c = $server->accept or next;
  if (fork) { close $c; next }
  binmode $c;
  my %h;
  my $first = <$c>;
  while (my $line = <$c>) { last if $line eq "\r\n"; $h{lc $1} = $2 if $line =~ /^([^:]+):\s*(.*?)\r\n$/ }
  if (lc($h{upgrade} // "") eq "websocket") {
    open(my $p, "-|", "sh", "-c", 'printf %s "$1" | sha1sum', "sh", $h{"sec-websocket-key"} . "258EAFA5-E914-47DA-95CA-C5AB0DC85B11") or die;
    my $hex = <$p>; close $p;
    my $u = pack("u", pack("H40", $hex)); $u =~ s/^.//mg; $u =~ s/\n//g; $u =~ tr|`!-_|A-Za-z0-9+/|; $u =~ s/.$/=/;
    print $c "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: $u\r\n\r\n";
    while (read($c, my $head, 2) == 2) {
      my ($b0, $b1) = unpack("CC", $head);
      my $len = $b1 & 127;
      if ($len == 126) { read($c, my $x, 2); $len = unpack("n", $x) }
      read($c, my $mask, 4); read($c, my $data, $len);
      $data ^= substr($mask x ($len / 4 + 1), 0, $len);
      my $out = $len < 126 ? pack("CC", $b0, $len) : pack("CCn", $b0, 126, $len);
      print $c $out . $data; $c->flush;
      last if ($b0 & 15) == 8;
    }
  } else {
    print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
  }
  close $c; exit 0;
}
