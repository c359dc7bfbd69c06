"""Lab hosts: real libvirtd daemons sandboxed in their own network and mount namespaces."""
