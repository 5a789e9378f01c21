"""``vprsnn bag``: write a bag from an image folder, or list a bag's image and pose topics."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    b = sub.add_parser("bag", help="write a bag from an image folder, or list a bag's image topics")
    bsub = b.add_subparsers(dest="bag_command", required=True)
    bf = bsub.add_parser("from-folder", help="write the images of a folder as a bag")
    bf.add_argument("folder")
    bf.add_argument("--out", required=True, metavar="BAG")
    bf.add_argument("--topic", default="/camera/image_raw")
    bf.add_argument("--rate", type=float, default=10.0, metavar="HZ", help="frames per second of the stamps")
    bf.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    bf.add_argument("--compressed", action="store_true", help="sensor_msgs/CompressedImage (PNG)")
    bf.add_argument("--frame-id", default="camera", help="header.frame_id of the images (child_frame_id of "
                    "the odometry)")
    bf.add_argument("--poses", metavar="CSV", help="poses of the images (columns filename,x,y and optionally z, "
                    "and yaw in radians or qx,qy,qz,qw; one row per image), written as nav_msgs/Odometry "
                    "with the frames' stamps")
    bf.add_argument("--pose-frame", default="map", help="header.frame_id of the poses")
    bf.add_argument("--odom-topic", default="/odom", help="topic of the poses")
    bf.set_defaults(func=run_from_folder)
    bi = bsub.add_parser("info", help="image (and pose) topics of a bag with counts and rates")
    bi.add_argument("bag")
    bi.set_defaults(func=run_info)


def run_from_folder(args: argparse.Namespace) -> int:
    from vprsnn_ros.io.bags import write_bag_from_folder

    out = write_bag_from_folder(args.folder, args.out, topic=args.topic, rate_hz=args.rate,
                                storage=args.storage, compressed=args.compressed, frame_id=args.frame_id,
                                poses_csv=args.poses, pose_frame=args.pose_frame, odom_topic=args.odom_topic)
    print(f"bag written to {out}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from vprsnn_ros.io.bags import bag_info

    print(f"{'topic':40s} {'type':34s} {'count':>8s} {'rate Hz':>9s}")
    for t in bag_info(args.bag):
        kind = " (pose)" if t.is_pose else ""
        print(f"{t.topic:40s} {t.msgtype:34s} {t.count:8d} {t.rate_hz:9.3f}{kind}")
    return 0
