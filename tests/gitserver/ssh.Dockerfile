# A git server over SSH with key authentication, for tests.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server git \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --shell /bin/bash git && usermod -p '*' git \
    && mkdir -p /run/sshd /home/git/.ssh && chmod 700 /home/git/.ssh && chown git:git /home/git/.ssh \
    && ssh-keygen -A \
    && printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\n' > /etc/ssh/sshd_config.d/test.conf
CMD ["/usr/sbin/sshd", "-D", "-e"]
