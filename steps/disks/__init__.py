"""disks.sync: persistent disks copied with rsync, locally or over ssh."""
