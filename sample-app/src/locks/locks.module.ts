import { Module } from '@nestjs/common';
import { LocksController } from './locks.controller.js';
import { LocksFeed } from './locks.feed.js';

/** The live lock page (`GET /locks`). */
@Module({ controllers: [LocksController], providers: [LocksFeed] })
export class LocksModule {}
