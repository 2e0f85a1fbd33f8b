import { Body, Controller, Get, Param, Post } from '@nestjs/common';
import { type Account, AccountsService, type TransferResult } from './accounts.service.js';
import { ParseTransferPipe, type TransferDto } from './transfer.dto.js';

@Controller('accounts')
export class AccountsController {
  constructor(private readonly accounts: AccountsService) {}

  /** A transfer guarded by the distributed lock (see AccountsService.transfer). */
  @Post('transfer')
  transfer(@Body(ParseTransferPipe) dto: TransferDto): Promise<TransferResult> {
    return this.accounts.transfer(dto.from, dto.to, dto.amount);
  }

  /** DEMONSTRATION ONLY: the unguarded transfer, to see lost updates happen. */
  @Post('transfer-unsafe')
  transferUnsafe(@Body(ParseTransferPipe) dto: TransferDto): Promise<TransferResult> {
    return this.accounts.transferUnsafe(dto.from, dto.to, dto.amount);
  }

  @Get(':id')
  get(@Param('id') id: string): Promise<Account> {
    return this.accounts.get(id);
  }
}
