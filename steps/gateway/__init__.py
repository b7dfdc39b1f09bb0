"""gateway.switch: point the SSL-terminating gateway at the new routers."""
